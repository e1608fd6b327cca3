"""Clip storage: encrypted clip files, their index, and the household's keys."""

from doorbell.store.clips import ClipNotFound, ClipStore, Repaired, StartupReport
from doorbell.store.index import Clip, StoreFullError
from doorbell.store.keyring import Keyring, KeyringError
from doorbell.store.layout import KEEP, THUMBNAIL, VIDEO, valid_id
from doorbell.store.recording import ClipRecording
from doorbell.store.retention import Plan, Rules, plan_retention

__all__ = [
    "KEEP",
    "THUMBNAIL",
    "VIDEO",
    "Clip",
    "ClipNotFound",
    "ClipRecording",
    "ClipStore",
    "Keyring",
    "KeyringError",
    "Plan",
    "Repaired",
    "Rules",
    "StartupReport",
    "StoreFullError",
    "plan_retention",
    "valid_id",
]
