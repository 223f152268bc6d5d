"""The Landlock layer (Linux 5.13+): a ruleset that handles every right the kernel's ABI
knows (filesystem; TCP bind and connect; abstract unix sockets and signals out of the
worker) and grants none but a profile's reads and executes."""

from __future__ import annotations

import ctypes
import os

from .profile import PYTHON_PROFILE, Profile

# The same syscall numbers on every architecture.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_ACCESS_FS_EXECUTE = 1 << 0
LANDLOCK_ACCESS_FS_READ_FILE = 1 << 2
O_PATH = 0o10000000


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # struct landlock_path_beneath_attr is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _allow(libc: ctypes.CDLL, ruleset: int, paths: tuple[str, ...], access: int) -> None:
    for path in paths:
        try:
            fd = os.open(path, O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # e.g. no /lib64 here
        try:
            rights = (
                access
                if os.path.isdir(path)
                else access & (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE)
            )
            attr = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
            if (
                libc.syscall(
                    ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
                    ctypes.c_int(ruleset),
                    ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(attr),
                    ctypes.c_uint32(0),
                )
                != 0
            ):
                raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
        finally:
            os.close(fd)


def restrict(libc: ctypes.CDLL, profile: Profile = PYTHON_PROFILE) -> bool | str:
    """Deny every filesystem access (and, where the kernel's ABI allows, TCP bind and
    connect, abstract unix sockets and signals to processes outside the worker): a
    ruleset that handles all rights and grants none but the profile's reads and
    executes. Everything the Python worker needs was imported and read before this
    point. Returns ``"abi <n>"``, or why the layer is missing; ``OSError`` when a rule
    cannot be added."""
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )
    if abi < 1:
        return f"unavailable: {os.strerror(ctypes.get_errno())}"
    # Access rights known to each ABI version (linux/landlock.h).
    fs_bits = {1: 13, 2: 14, 3: 15}.get(abi, 16)
    attr = _LandlockRulesetAttr(
        handled_access_fs=(1 << fs_bits) - 1,
        handled_access_net=0b11 if abi >= 4 else 0,
        scoped=0b11 if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(
        ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if ruleset < 0:
        return f"unavailable: {os.strerror(ctypes.get_errno())}"
    try:
        _allow(libc, ruleset, profile.landlock_read, LANDLOCK_ACCESS_FS_READ_FILE)
        _allow(libc, ruleset, profile.landlock_execute, LANDLOCK_ACCESS_FS_EXECUTE)
        if (
            libc.syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0))
            != 0
        ):
            return f"unavailable: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(ruleset)
    return f"abi {abi}"
