#!/usr/bin/env python3
"""Writes a 512-byte x86 boot sector for the QEMU test: when the BIOS boots it
from a UKAI disk, it writes itself to sector 2 (LBA 1) through int 13h, then
prints MESSAGE on the first serial port and halts.

usage: boot_sector.py FILE MESSAGE
"""
import sys

path, message = sys.argv[1], sys.argv[2].encode()
msg_at = 35
code = bytes([
    0x31, 0xC0,             # 0  xor ax, ax
    0x8E, 0xD8,             # 2  mov ds, ax
    0x8E, 0xC0,             # 4  mov es, ax
    0xBB, 0x00, 0x7C,       # 6  mov bx, 0x7c00       ; this sector, in memory
    0xB8, 0x01, 0x03,       # 9  mov ax, 0x0301       ; write 1 sector
    0xB9, 0x02, 0x00,       # 12 mov cx, 0x0002       ; cylinder 0, sector 2
    0x30, 0xF6,             # 15 xor dh, dh           ; head 0, dl = boot drive
    0xCD, 0x13,             # 17 int 0x13
    0xBE, (0x7C00 + msg_at) & 0xFF, (0x7C00 + msg_at) >> 8,  # 19 mov si, msg
    0xBA, 0xF8, 0x03,       # 22 mov dx, 0x3f8        ; COM1
    0xAC,                   # 25 lodsb
    0x84, 0xC0,             # 26 test al, al
    0x74, 0x03,             # 28 jz 33
    0xEE,                   # 30 out dx, al
    0xEB, 0xF8,             # 31 jmp 25
    0xFA,                   # 33 cli
    0xF4,                   # 34 hlt
])
assert len(code) == msg_at
sector = code + message + b"\n\0"
sector += b"\0" * (510 - len(sector)) + b"\x55\xAA"
with open(path, "r+b") as f:
    f.write(sector)
    f.flush()
