"""The seccomp layer: load a profile's syscall allowlist as a filter through libseccomp
(ctypes), every other syscall failing with ``EPERM`` (``clone3`` with ``ENOSYS``)."""

from __future__ import annotations

import ctypes
import errno
import os

from .profile import PYTHON_PROFILE, SELF_PID, ArgRule, Profile

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000


def libseccomp() -> ctypes.CDLL | None:
    """libseccomp, or ``None`` where it is not installed."""
    for name in ("libseccomp.so.2", "libseccomp.so"):
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
    return None


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def load_filter(lib: ctypes.CDLL | None, profile: Profile = PYTHON_PROFILE) -> bool | str:
    """Load the allowlist seccomp filter through libseccomp (default: ``EPERM``);
    ``True``, or why it is missing."""
    if lib is None:
        return "unavailable: libseccomp not found"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    filter_ctx = lib.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
    if not filter_ctx:
        return "unavailable: seccomp_init failed"
    try:
        # clone3 must look absent (ENOSYS) so libc falls back to clone, which fails.
        rules = [(name, SCMP_ACT_ALLOW) for name in profile.syscalls] + [
            ("clone3", SCMP_ACT_ERRNO | errno.ENOSYS)
        ]
        for syscall, action in rules:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                continue  # not on this architecture
            if lib.seccomp_rule_add(filter_ctx, action, number, 0) != 0:
                return f"unavailable: cannot add a rule for {syscall}"
        problem = _arg_rules(lib, filter_ctx, profile.arg_rules)
        if problem:
            return problem
        if lib.seccomp_load(filter_ctx) != 0:
            return "unavailable: seccomp_load failed"
    finally:
        lib.seccomp_release(filter_ctx)
    return True


def _arg_rules(lib: ctypes.CDLL, filter_ctx: int, rules: tuple[ArgRule, ...]) -> str | None:
    """Add the calls allowed only with given arguments; a reason on failure."""
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    pid = os.getpid()
    for syscall, comparisons in rules:
        number = lib.seccomp_syscall_resolve_name(syscall.encode())
        if number < 0:
            continue
        array = (_ArgCmp * len(comparisons))(
            *[_ArgCmp(arg, op, pid if a == SELF_PID else a, b) for arg, op, a, b in comparisons]
        )
        if lib.seccomp_rule_add_array(filter_ctx, SCMP_ACT_ALLOW, number, len(comparisons), array) != 0:
            return f"unavailable: cannot add an argument rule for {syscall}"
    return None
