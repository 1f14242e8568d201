//! Just enough ELF reading to tell a statically linked QEMU from a dynamically linked one.
//!
//! A dynamically linked interpreter registered with `F` works on the host but fails inside a
//! container, where its dynamic loader path resolves in the container's file system (one of
//! the causes of "exec format error" in buildx issues), so brix only registers static ones.

use std::io::{self, Read, Seek, SeekFrom};

/// How an executable is linked, as far as binfmt registration cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// No `PT_INTERP` program header: runs without a dynamic loader.
    Static,
    /// Has a `PT_INTERP` program header (needs `ld-linux*.so` at run time).
    Dynamic,
    /// Not an ELF file (a script, say) or a truncated one.
    NotElf,
}

const PT_INTERP: u32 = 3;

/// Reads the ELF header and program headers of `file` and says how it is linked.
pub fn linkage<R: Read + Seek>(file: &mut R) -> io::Result<Linkage> {
    let mut ident = [0u8; 64];
    let n = read_up_to(file, &mut ident)?;
    if n < 52 || &ident[..4] != b"\x7fELF" {
        return Ok(Linkage::NotElf);
    }
    let is64 = match ident[4] {
        1 => false,
        2 => true,
        _ => return Ok(Linkage::NotElf),
    };
    let big = match ident[5] {
        1 => false,
        2 => true,
        _ => return Ok(Linkage::NotElf),
    };
    let u16_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1]];
        if big {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    };
    let u32_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };
    let u64_at = |b: &[u8], at: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        if big {
            u64::from_be_bytes(v)
        } else {
            u64::from_le_bytes(v)
        }
    };
    let (phoff, phentsize, phnum) = if is64 {
        if n < 64 {
            return Ok(Linkage::NotElf);
        }
        (u64_at(&ident, 32), u16_at(&ident, 54), u16_at(&ident, 56))
    } else {
        (
            u64::from(u32_at(&ident, 28)),
            u16_at(&ident, 42),
            u16_at(&ident, 44),
        )
    };
    if phnum == 0 {
        return Ok(Linkage::Static);
    }
    // p_type is the first 4 bytes of a program header in both classes.
    if usize::from(phentsize) < 4 {
        return Ok(Linkage::NotElf);
    }
    let mut header = vec![0u8; usize::from(phentsize)];
    for i in 0..u64::from(phnum) {
        file.seek(SeekFrom::Start(phoff + i * u64::from(phentsize)))?;
        if read_up_to(file, &mut header)? < header.len() {
            return Ok(Linkage::NotElf);
        }
        if u32_at(&header, 0) == PT_INTERP {
            return Ok(Linkage::Dynamic);
        }
    }
    Ok(Linkage::Static)
}

fn read_up_to<R: Read>(file: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A minimal 64-bit little-endian ELF header followed by the given program header types.
    fn elf64(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    /// A minimal 32-bit big-endian ELF header followed by the given program header types.
    fn elf32_be(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 52];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1;
        b[5] = 2;
        b[28..32].copy_from_slice(&52u32.to_be_bytes());
        b[42..44].copy_from_slice(&32u16.to_be_bytes());
        b[44..46].copy_from_slice(&(types.len() as u16).to_be_bytes());
        for t in types {
            let mut ph = vec![0u8; 32];
            ph[..4].copy_from_slice(&t.to_be_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn tells_static_from_dynamic() {
        // PT_LOAD = 1, PT_NOTE = 4, PT_GNU_STACK = 0x6474e551.
        let check = |bytes: Vec<u8>| linkage(&mut Cursor::new(bytes)).ok();
        assert_eq!(check(elf64(&[1, 1, 4, 0x6474_e551])), Some(Linkage::Static));
        assert_eq!(check(elf64(&[6, 3, 1])), Some(Linkage::Dynamic));
        assert_eq!(check(elf32_be(&[1, 1])), Some(Linkage::Static));
        assert_eq!(check(elf32_be(&[3])), Some(Linkage::Dynamic));
    }

    #[test]
    fn rejects_non_elf_and_truncated_files() {
        let check = |bytes: Vec<u8>| linkage(&mut Cursor::new(bytes)).ok();
        assert_eq!(
            check(b"#!/bin/sh\nexec qemu\n".to_vec()),
            Some(Linkage::NotElf)
        );
        let mut truncated = elf64(&[1, 3]);
        truncated.truncate(64 + 56 + 10);
        assert_eq!(check(truncated), Some(Linkage::NotElf));
    }
}
