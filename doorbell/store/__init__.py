"""Clip storage: encrypted clip files, their index, and the household's keys."""

from doorbell.store.clips import ClipNotFound, ClipStore, StartupReport
from doorbell.store.index import Clip, StoreFullError
from doorbell.store.keyring import Keyring, KeyringError
from doorbell.store.layout import INDEX, KEEP, THUMBNAIL, VIDEO, valid_id
from doorbell.store.recording import ClipRecording
from doorbell.store.retention import Plan, Rules, plan_retention

__all__ = [
    "INDEX",
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
    "Rules",
    "StartupReport",
    "StoreFullError",
    "plan_retention",
    "valid_id",
]
