# A boot sector for the live-migration test (tests/integration/migrate.sh):
# the BIOS boots it from a UKAI disk and it then writes forever, through
# int 13h (LBA extensions), a ring of RING sectors from LBA BASE on:
# write i fills sector BASE + i % RING with the 32-bit value i, then reads
# back the sector of write i - 1 and checks it holds i - 1 (so the first
# read on a migration's destination checks the source's last write). Every
# 64 writes it prints "W%08x\n" (i) on COM1; a failed call prints "ERR"
# and a read that does not match "BAD %08x\n" (the value expected), and it
# halts.
#
#   as --32 -o ring_writer.o ring_writer.S
#   ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o ring_writer.bin ring_writer.o
        .code16
        .set BASE, 8
        .set RING, 1024
        .set WBUF, 0x8000
        .set RBUF, 0x8200
        .set COM1, 0x3f8

        .globl _start
_start:
        cli
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x7c00, %sp
        sti
        mov %dl, drive
        movl $1, counter

next:
        mov counter, %eax                 # write `counter` ...
        mov $WBUF, %di
        mov $128, %cx
        cld
        rep stosl
        mov counter, %eax
        call slot                         # ... to its slot
        movw $WBUF, dap_buf
        mov $0x4300, %ax
        call disk

        mov counter, %eax                 # read the previous write back
        dec %eax
        jz written
        call slot
        movw $RBUF, dap_buf
        mov $0x4200, %ax
        call disk
        mov counter, %eax
        dec %eax
        cmp RBUF, %eax
        jne bad
        cmp RBUF + 508, %eax
        jne bad

written:
        mov counter, %eax
        test $63, %eax
        jnz 1f
        mov $'W', %al
        call putc
        mov counter, %eax
        call puthex
1:
        incl counter
        jmp next

# dap_lba = BASE + %eax % RING
slot:
        and $(RING - 1), %eax
        add $BASE, %eax
        mov %eax, dap_lba
        ret

# int 13h with %ax (0x4200 read, 0x4300 write) on the disk address packet
disk:
        mov $dap, %si
        mov drive, %dl
        int $0x13
        jc err
        ret

err:
        mov $'E', %al
        call putc
        mov $'R', %al
        call putc
        call putc
        mov $'\n', %al
        call putc
        jmp halt

bad:
        push %eax
        mov $'B', %al
        call putc
        mov $'A', %al
        call putc
        mov $'D', %al
        call putc
        mov $' ', %al
        call putc
        pop %eax
        call puthex
halt:
        cli
        hlt
        jmp halt

# "%08x\n" of %eax
puthex:
        mov %eax, %edx
        mov $8, %cx
2:
        rol $4, %edx
        mov %dl, %al
        and $0x0f, %al
        add $'0', %al
        cmp $'9', %al
        jbe 3f
        add $('a' - '0' - 10), %al
3:
        push %dx
        call putc
        pop %dx
        loop 2b
        mov $'\n', %al
        call putc
        ret

putc:
        push %dx
        mov $COM1, %dx
        out %al, %dx
        pop %dx
        ret

drive:  .byte 0
        .align 4
counter: .long 0
dap:    .byte 16, 0
        .word 1                           # sectors
dap_buf: .word 0, 0                       # offset, segment
dap_lba: .long 0, 0

        .org 510
        .byte 0x55, 0xaa
