"""Reads what a shared library is before anything dlopens it.

dlopen of a wrong file fails with a terse dlerror (or, worse, succeeds and registers nothing), and
TensorRT's ``loadLibrary`` only says a symbol "could not be loaded". Reading the ELF header and the
dynamic symbol table first lets the loader say exactly what is wrong: not a shared library, built for
another CPU, or missing the entry points TensorRT needs. Pure Python, reads only the file.
"""

import mmap
import os
import platform
import struct
from dataclasses import dataclass
from typing import FrozenSet, Optional, Tuple

ELF_MAGIC = b"\x7fELF"
ET_DYN = 3
SHT_DYNSYM = 11
SHT_DYNAMIC = 6
SHN_UNDEF = 0
DT_NEEDED = 1
STB_GLOBAL, STB_WEAK = 1, 2

# e_machine values (ELF specification / glibc elf.h) for the CPUs TensorRT ships for, plus common others
# so that a foreign library is named rather than shown as a number.
MACHINE_NAMES = {
    3: "x86",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    40: "arm",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
}
_HOST_MACHINES = {"x86_64": 62, "amd64": 62, "aarch64": 183, "arm64": 183, "ppc64le": 21, "i686": 3, "i386": 3}


class NotALoadableLibrary(ValueError):
    """The file cannot be loaded into this process; the message (one line) says why."""


@dataclass(frozen=True)
class SharedLibraryInfo:
    path: str
    elf_class: int  # 1: 32-bit, 2: 64-bit
    machine: int
    exported: FrozenSet[str]  # defined global/weak dynamic symbols
    imported: FrozenSet[str]  # undefined dynamic symbols, resolved from other libraries at load time
    needed: Tuple[str, ...]  # DT_NEEDED sonames

    @property
    def machine_name(self) -> str:
        return MACHINE_NAMES.get(self.machine, f"machine {self.machine}")


def host_machine() -> Optional[int]:
    return _HOST_MACHINES.get(platform.machine().lower())


def read_shared_library(path) -> SharedLibraryInfo:
    """Parse ``path`` as an ELF shared object of this host's architecture; raise NotALoadableLibrary otherwise."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        if f.read(4) != ELF_MAGIC:
            raise NotALoadableLibrary(f"{path} is not a shared library (not an ELF file)")
        # Plugin libraries with fat CUDA binaries run to hundreds of MB: map, don't read.
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _check_host(_read_mapped(data, path))


def _read_mapped(data, path: str) -> SharedLibraryInfo:
    elf_class, endian_byte = data[4], data[5]
    if elf_class not in (1, 2) or endian_byte not in (1, 2):
        raise NotALoadableLibrary(f"{path} is a corrupt ELF file (bad class/endianness bytes)")
    is64 = elf_class == 2
    end = "<" if endian_byte == 1 else ">"
    try:
        return _parse(data, is64, end, path)
    except NotALoadableLibrary:
        raise
    except (struct.error, IndexError, ValueError):
        raise NotALoadableLibrary(f"{path} is a truncated or corrupt ELF file") from None


def _check_host(info: SharedLibraryInfo) -> SharedLibraryInfo:
    is64 = info.elf_class == 2
    host = host_machine()
    host_is64 = struct.calcsize("P") == 8
    if host is not None and (info.machine != host or is64 != host_is64):
        bits = "64" if is64 else "32"
        raise NotALoadableLibrary(
            f"{info.path} was built for {info.machine_name} ({bits}-bit) but this machine is "
            f"{MACHINE_NAMES.get(host, platform.machine())}; rebuild the plugin library for this CPU"
        )
    return info


def _parse(data: bytes, is64: bool, end: str, path: str) -> SharedLibraryInfo:
    e_type, e_machine = struct.unpack_from(end + "HH", data, 16)
    if e_type != ET_DYN:
        kind = {1: "a relocatable object (.o)", 2: "an executable", 4: "a core dump"}.get(e_type, f"type {e_type}")
        raise NotALoadableLibrary(f"{path} is not a shared library (ELF {kind})")
    if is64:
        e_shoff, = struct.unpack_from(end + "Q", data, 40)
        e_shentsize, e_shnum = struct.unpack_from(end + "HH", data, 58)
        sh_fmt, sym_fmt = end + "IIQQQQIIQQ", end + "IBBHQQ"
    else:
        e_shoff, = struct.unpack_from(end + "I", data, 32)
        e_shentsize, e_shnum = struct.unpack_from(end + "HH", data, 46)
        sh_fmt, sym_fmt = end + "IIIIIIIIII", end + "IIIBBH"

    sections = [struct.unpack_from(sh_fmt, data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    exported, imported, needed = set(), set(), []
    for sh_name, sh_type, _flags, _addr, sh_offset, sh_size, sh_link, _info, _align, sh_entsize in sections:
        if sh_type == SHT_DYNSYM and sh_entsize:
            strtab = sections[sh_link]
            for i in range(1, sh_size // sh_entsize):  # entry 0 is the reserved null symbol
                fields = struct.unpack_from(sym_fmt, data, sh_offset + i * sh_entsize)
                if is64:
                    st_name, st_info, _other, st_shndx = fields[0], fields[1], fields[2], fields[3]
                else:
                    st_name, st_info, st_shndx = fields[0], fields[3], fields[5]
                if st_info >> 4 not in (STB_GLOBAL, STB_WEAK):
                    continue
                name = _cstring(data, strtab[4] + st_name)
                (imported if st_shndx == SHN_UNDEF else exported).add(name)
        elif sh_type == SHT_DYNAMIC and sh_entsize:
            strtab = sections[sh_link]
            entry_fmt = end + ("qQ" if is64 else "iI")
            for i in range(sh_size // sh_entsize):
                tag, value = struct.unpack_from(entry_fmt, data, sh_offset + i * sh_entsize)
                if tag == DT_NEEDED:
                    needed.append(_cstring(data, strtab[4] + value))
                elif tag == 0:
                    break
    return SharedLibraryInfo(path, 2 if is64 else 1, e_machine, frozenset(exported), frozenset(imported), tuple(needed))


def _cstring(data, offset: int) -> str:
    stop = data.find(b"\0", offset)
    if stop < 0:
        raise ValueError("unterminated string")
    return data[offset:stop].decode("utf-8", "replace")
