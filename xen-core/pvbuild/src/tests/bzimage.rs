//! bzImages made here as Linux's build makes them (a setup header, then the kernel ELF
//! compressed with XZ and the x86 BCJ filter, then the unpacked size), unpacked and parsed;
//! and every way such a file can lie, each refused with its own error.

use std::io::Write;

use lzma_rust2::{CheckType, FilterType, XzOptions, XzWriter};

use super::super::bzimage::{self, MAX_DICT, Payload};
use super::*;

/// The kernel ELF: code that looks like x86 (calls and jumps, which BCJ rewrites) so the
/// filter has work to do.
fn kernel_elf() -> Vec<u8> {
    let mut code = Vec::new();
    for i in 0u32..4000 {
        code.push(0xE8); // call rel32
        code.extend_from_slice(&(i * 16).to_le_bytes());
        code.extend_from_slice(&[0x48, 0x89, 0xC7, 0x90]);
    }
    elf(&code, 0x1000, &good_notes(), 2)
}

/// XZ with the x86 BCJ filter, CRC32 check and a `dict`-byte dictionary, as Linux's
/// `xz_wrap.sh` invokes xz.
fn xz(data: &[u8], dict: u32) -> Vec<u8> {
    let mut opts = XzOptions::with_preset(6);
    opts.lzma_options.dict_size = dict;
    opts.set_check_sum_type(CheckType::Crc32);
    opts.prepend_pre_filter(FilterType::BcjX86, 0);
    let mut w = XzWriter::new(Vec::new(), opts).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// A bzImage around `payload`: 3 setup sectors after the boot sector, the payload at offset
/// 0x40 into the protected-mode part.
fn bzimage_with(payload: &[u8]) -> Vec<u8> {
    let setup_sects = 3u8;
    let pm_start = (usize::from(setup_sects) + 1) * 512;
    let offset = 0x40usize;
    let mut f = vec![0u8; pm_start + offset];
    f[0x1f1] = setup_sects;
    f[0x1fe..0x200].copy_from_slice(&[0x55, 0xAA]);
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
    f[0x248..0x24c].copy_from_slice(&(offset as u32).to_le_bytes());
    f[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    f.extend_from_slice(&[0xCC; 100]); // what follows the payload in a real image
    f
}

/// An XZ payload as Linux stores it: the stream, then the unpacked size.
fn xz_payload(elf: &[u8], dict: u32) -> Vec<u8> {
    let mut p = xz(elf, dict);
    p.extend_from_slice(&(elf.len() as u32).to_le_bytes());
    p
}

fn unpack(file: &[u8]) -> Result<Vec<u8>, ImageError> {
    match bzimage::payload(file)? {
        Payload::Elf(e) => Ok(e.to_vec()),
        Payload::Xz { stream, unpacked_len, dict_len } => {
            let mut out = vec![0u8; unpacked_len];
            let mut dict = vec![0u8; dict_len];
            bzimage::unpack_xz(stream, &mut out, &mut dict)?;
            Ok(out)
        }
    }
}

#[test]
fn an_xz_bcj_bzimage_unpacks_to_its_elf_and_parses() {
    let elf = kernel_elf();
    let file = bzimage_with(&xz_payload(&elf, 1 << 20));
    assert!(bzimage::is_bzimage(&file));
    let Payload::Xz { unpacked_len, dict_len, .. } = bzimage::payload(&file).unwrap() else {
        panic!("an XZ payload")
    };
    assert_eq!((unpacked_len, dict_len), (elf.len(), 1 << 20));
    let out = unpack(&file).unwrap();
    assert_eq!(out, elf);
    let img = image::parse(&out).unwrap();
    assert_eq!(img.entry, BASE + 0x10);
}

#[test]
fn the_dictionary_size_is_read_from_the_stream() {
    let elf = kernel_elf();
    // Linux's 32 MiB; XZ stores 2^n or 3 * 2^(n-1), so other sizes are stored rounded up.
    for (dict, want) in [(32 << 20, 32 << 20), (3 << 20, 3 << 20), (100_000, 128 << 10)] {
        let Payload::Xz { dict_len, .. } =
            bzimage::payload(&bzimage_with(&xz_payload(&elf, dict))).unwrap()
        else {
            panic!("an XZ payload")
        };
        assert_eq!(dict_len, want, "dict {dict}");
    }
}

#[test]
fn an_uncompressed_elf_payload_is_taken_as_it_is() {
    let elf = kernel_elf();
    let file = bzimage_with(&elf);
    assert_eq!(bzimage::payload(&file), Ok(Payload::Elf(&elf[..])));
    // A bare ELF is not a bzImage.
    assert!(!bzimage::is_bzimage(&elf));
}

#[test]
fn other_compressions_are_named_in_the_refusal() {
    for (magic, name) in [(&[0x1F, 0x8B, 8][..], "gzip"), (&[0x28, 0xB5, 0x2F, 0xFD], "zstd")] {
        let mut p = magic.to_vec();
        p.extend_from_slice(&[0; 64]);
        assert_eq!(
            bzimage::payload(&bzimage_with(&p)),
            Err(ImageError::UnsupportedCompression(name))
        );
    }
}

#[test]
fn a_bad_setup_header_is_refused() {
    let good = bzimage_with(&xz_payload(&kernel_elf(), 1 << 20));
    let mut old = good.clone();
    old[0x206..0x208].copy_from_slice(&0x0206u16.to_le_bytes());
    assert!(matches!(bzimage::payload(&old), Err(ImageError::BadBzImage(_))));
    let mut long = good.clone();
    long[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        bzimage::payload(&long),
        Err(ImageError::BadBzImage("payload lies outside the file"))
    );
    let mut far = good.clone();
    far[0x248..0x24c].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    assert!(matches!(bzimage::payload(&far), Err(ImageError::BadBzImage(_))));
    assert!(matches!(bzimage::payload(&good[..0x230]), Err(ImageError::BadBzImage(_))));
}

#[test]
fn sizes_out_of_range_are_refused_before_any_allocation() {
    let elf = kernel_elf();
    let mut p = xz_payload(&elf, 1 << 20);
    let n = p.len();
    p[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        bzimage::payload(&bzimage_with(&p)),
        Err(ImageError::BadBzImage("unpacked size out of range"))
    );
    let big_dict = xz_payload(&elf, (MAX_DICT as u32) * 2);
    assert!(matches!(bzimage::payload(&bzimage_with(&big_dict)), Err(ImageError::Xz(_))));
}

/// Unpacks `payload` with the sizes it declares (or `unpacked` instead), expecting an error
/// containing `want`.
fn expect_xz_error(payload: &[u8], unpacked: Option<usize>, want: &str) {
    let file = bzimage_with(payload);
    let Payload::Xz { stream, unpacked_len, dict_len } = bzimage::payload(&file).unwrap() else {
        panic!("an XZ payload")
    };
    let mut out = vec![0u8; unpacked.unwrap_or(unpacked_len)];
    let mut dict = vec![0u8; dict_len];
    match bzimage::unpack_xz(stream, &mut out, &mut dict) {
        Err(ImageError::Xz(why)) => assert!(why.contains(want), "{why:?} lacks {want:?}"),
        other => panic!("expected an XZ error with {want:?}, got {other:?}"),
    }
}

#[test]
fn truncated_corrupt_or_misdeclared_streams_are_errors() {
    let elf = kernel_elf();
    let stream = xz(&elf, 1 << 20);
    let with_size = |s: &[u8], size: usize| {
        let mut p = s.to_vec();
        p.extend_from_slice(&(size as u32).to_le_bytes());
        p
    };
    // Cut in the middle of the compressed data.
    expect_xz_error(&with_size(&stream[..stream.len() / 2], elf.len()), None, "truncated");
    // A flipped byte in the data: the decoder or the CRC32 notices.
    let mut corrupt = stream.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x55;
    let file = bzimage_with(&with_size(&corrupt, elf.len()));
    assert!(matches!(unpack(&file), Err(ImageError::Xz(_))));
    // Declared smaller or larger than what the stream holds.
    expect_xz_error(&with_size(&stream, elf.len() - 100), None, "more than the declared");
    expect_xz_error(&with_size(&stream, elf.len() + 100), None, "not the declared");
    // Garbage after the stream.
    let mut trailing = stream.clone();
    trailing.extend_from_slice(&[1, 2, 3, 4]);
    expect_xz_error(&with_size(&trailing, elf.len()), None, "after the end");
}

#[test]
fn a_dictionary_smaller_than_declared_is_an_error_not_a_panic() {
    let elf = kernel_elf();
    let file = bzimage_with(&xz_payload(&elf, 1 << 20));
    let Payload::Xz { stream, unpacked_len, .. } = bzimage::payload(&file).unwrap() else {
        panic!("an XZ payload")
    };
    let mut out = vec![0u8; unpacked_len];
    let mut dict = vec![0u8; 64 << 10];
    assert!(matches!(bzimage::unpack_xz(stream, &mut out, &mut dict), Err(ImageError::Xz(_))));
}
