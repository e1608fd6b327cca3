"""What the doorbell says about itself, in words: the status page's and systemd's
``STATUS=`` lines, made from the parts' own states (pure functions).

    fault_lines(keys_fault, recorder_fault, retention_warning)  # one line a fault
    describe_retention(config.storage)                          # the rules in words
"""

from doorbell.config import StorageSettings


def fault_lines(keys: str | None, recorder: str | None, retention: str) -> list[str]:
    """Every fault in one line each, for the status page and STATUS=: the keys', the
    recorder's (disk full, storage fault), retention's ("; "-joined) without the
    retention line a disk-full line already says more fully."""
    found = [line for line in (keys, recorder) if line]
    for part in retention.split("; ") if retention else ():
        if not (recorder and recorder.startswith("disk full") and "short of space" in part):
            found.append(part)
    return found


def describe_retention(storage: StorageSettings) -> str:
    """The rules in words, for the status page."""
    parts = [f"clips older than {storage.max_age_days} days are deleted"]
    if storage.quota_gb:
        parts.append(f"the oldest go when all clips pass {storage.quota_gb:g} GB")
    if storage.min_free_mb:
        parts.append(f"or when the disk has under {storage.min_free_mb} MB free")
    return ", ".join(parts) + "; kept clips are never deleted"
