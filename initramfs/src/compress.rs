//! Compression of the whole archive, each format in the flavour the kernel's
//! initramfs unpacker (`init/initramfs.c` → `lib/decompress_*.c`, Linux
//! 6.1) accepts.

use anyhow::{bail, Result};
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// How the archive is compressed. The kernel detects the format from the
/// magic bytes, but only unpacks formats its config enables
/// ([`Compression::kernel_config_symbol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Lz4,
}

/// The default: LZ4, because it boots fastest, which matters most when
/// NodeOS runs under QEMU without KVM (TCG), as in CI.
///
/// Measured on a 99.7 MB archive (the 99 MB host `node` binary plus a tiny
/// static init), booted with a Debian Linux 6.1 kernel under QEMU TCG.
/// "Kernel unpack" is the kernel's own decompress + unpack, counted in
/// instructions with `-icount shift=0` (deterministic), and in wall-clock
/// seconds (best of 4, on a loaded 2-core host):
///
/// | format (as we write it) | size    | kernel unpack        | compress (ours) |
/// |-------------------------|---------|----------------------|-----------------|
/// | none                    | 99.7 MB | 0.16 G insns, 0.35 s | 0.3 s           |
/// | lz4 (legacy, fast)      | 52.5 MB | 0.42 G insns, 0.71 s | 0.8 s           |
/// | zstd -19, 8 MiB window  | 27.0 MB | 1.52 G insns, 2.83 s | 60-140 s        |
/// | gzip -6                 | 37.3 MB | 1.69 G insns, 3.10 s | 2.7-3.9 s       |
/// | xz -6, CRC32            | 24.4 MB | 9.07 G insns, 25 s   | 70-170 s        |
///
/// LZ4 unpacks 3.6x faster than zstd and 4x faster than gzip (about 2 s
/// saved per TCG boot) and compresses in under a second; the price is an
/// image twice the size of zstd's. xz is the smallest but costs ~25 s per
/// TCG boot. Pick [`Compression::Zstd`] when image size matters more than
/// boot time (e.g. images that are downloaded).
pub const DEFAULT_COMPRESSION: Compression = Compression::Lz4;

/// gzip level 6: on a 99 MB node binary -9 is only 0.7% smaller but three
/// times slower to compress; decompression speed is the same.
pub const GZIP_LEVEL: u32 = 6;
/// xz preset 6 (8 MiB dictionary; the kernel's unxz allocates the
/// dictionary dynamically when unpacking an initramfs, so any size works).
pub const XZ_PRESET: u32 = 6;
/// zstd level 19, as the kernel's own build uses for zstd initramfs: the
/// smallest output whose window (8 MiB) the kernel accepts. Lower levels
/// decompress as fast or slightly faster (15: 30.2 MB; 9: 30.9 MB) and
/// compress far faster; 19 is for when size is the point of choosing zstd.
pub const ZSTD_LEVEL: i32 = 19;
/// `lib/decompress_unzstd.c` rejects frames whose window is larger than
/// `ZSTD_WINDOWSIZE_MAX` and its comments promise only 8 MiB; 2^23 keeps
/// the kernel's allocation small and is what level 19 picks anyway.
pub const ZSTD_WINDOW_LOG: u32 = 23;
/// `lib/decompress_unlz4.c`: the legacy format's fixed block size.
pub const LZ4_LEGACY_BLOCK: usize = 8 << 20;
/// `lib/decompress_unlz4.c`: `ARCHIVE_MAGICNUMBER`.
pub const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
        Compression::Lz4,
    ];

    /// The kernel option that lets the kernel unpack an initramfs compressed
    /// this way (`None` needs none).
    pub fn kernel_config_symbol(&self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("CONFIG_RD_GZIP"),
            Compression::Xz => Some("CONFIG_RD_XZ"),
            Compression::Zstd => Some("CONFIG_RD_ZSTD"),
            Compression::Lz4 => Some("CONFIG_RD_LZ4"),
        }
    }

    /// What follows `.cpio` in a conventional file name: `""`, `".gz"`,
    /// `".xz"`, `".zst"` or `".lz4"` (so `initramfs.cpio.lz4`).
    pub fn file_extension(&self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Lz4 => ".lz4",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Compression> {
        match Compression::ALL.iter().find(|c| c.name() == s) {
            Some(c) => Ok(*c),
            None => {
                bail!("unknown initramfs compression {s:?}; use one of none, gzip, xz, zstd, lz4")
            }
        }
    }
}

/// A compressing writer; [`Encoder::finish`] writes the end of the stream
/// and returns the inner writer.
pub(crate) enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Lz4(Lz4LegacyEncoder<W>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(compression: Compression, out: W) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            // GzBuilder's defaults are reproducible: mtime 0, no file name,
            // OS byte 255 ("unknown") whatever the host.
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new().write(out, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compression::Xz => {
                // The kernel's xz decoder supports only the CRC32 check (and
                // none); xz's default CRC64 would be rejected at boot.
                let stream = liblzma::stream::Stream::new_easy_encoder(
                    XZ_PRESET,
                    liblzma::stream::Check::Crc32,
                )
                .map_err(io::Error::other)?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                enc.window_log(ZSTD_WINDOW_LOG)?;
                // The checksum lets the kernel detect a corrupt image.
                enc.include_checksum(true)?;
                Encoder::Zstd(enc)
            }
            Compression::Lz4 => Encoder::Lz4(Lz4LegacyEncoder::new(out)?),
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Lz4(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
        }
    }
}

/// The LZ4 "legacy" frame format, the only LZ4 framing the kernel unpacks
/// (`lib/decompress_unlz4.c`; `lz4 -l` writes it): the little-endian magic
/// 0x184C2102, then for each 8 MiB of input (the last one shorter) a
/// little-endian u32 compressed size followed by an independent LZ4 block.
/// There is no end marker and no checksum.
pub(crate) struct Lz4LegacyEncoder<W: Write> {
    out: W,
    /// Input not yet compressed; compressed when it reaches a full block.
    block: Vec<u8>,
    compressed: Vec<u8>,
}

impl<W: Write> Lz4LegacyEncoder<W> {
    fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&LZ4_LEGACY_MAGIC.to_le_bytes())?;
        Ok(Lz4LegacyEncoder {
            out,
            block: Vec::with_capacity(LZ4_LEGACY_BLOCK),
            compressed: vec![0; lz4_flex::block::get_maximum_output_size(LZ4_LEGACY_BLOCK)],
        })
    }

    fn emit_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let n = lz4_flex::block::compress_into(&self.block, &mut self.compressed)
            .map_err(io::Error::other)?;
        // The kernel decodes a block into an 8 MiB buffer; a block never
        // exceeds that since its input never does.
        self.out.write_all(&(n as u32).to_le_bytes())?;
        self.out.write_all(&self.compressed[..n])?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.emit_block()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Lz4LegacyEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(LZ4_LEGACY_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == LZ4_LEGACY_BLOCK {
            self.emit_block()?;
        }
        Ok(n)
    }

    /// Only flushes the inner writer: emitting a short block here would
    /// make the output depend on how callers flush.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Compression::ALL {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
        }
        let err = "bzip2".parse::<Compression>().unwrap_err().to_string();
        assert!(err.contains("none, gzip, xz, zstd, lz4"), "{err}");
    }

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new(c, Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn xz_uses_crc32_check() {
        let out = compress(Compression::Xz, b"hello");
        // Stream header: magic, then stream flags 0x00 <check id>; CRC32 = 1.
        assert_eq!(&out[..6], b"\xfd7zXZ\0");
        assert_eq!(&out[6..8], &[0, 1]);
    }

    #[test]
    fn zstd_window_fits_the_kernel() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let out = compress(Compression::Zstd, &data);
        assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let fhd = out[4];
        assert_eq!(
            fhd & 0x20,
            0,
            "single-segment frame has no window descriptor"
        );
        assert_ne!(fhd & 0x04, 0, "content checksum flag");
        let wd = out[5];
        let window_log = 10 + u32::from(wd >> 3);
        let base = 1u64 << window_log;
        let window = base + base / 8 * u64::from(wd & 7);
        assert!(window <= 8 << 20, "window {window}");
    }

    #[test]
    fn lz4_legacy_framing() {
        // 20 MiB → blocks of 8, 8 and 4 MiB.
        let data: Vec<u8> = (0..20u32 << 20)
            .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
            .collect();
        let out = compress(Compression::Lz4, &data);
        assert_eq!(&out[..4], &LZ4_LEGACY_MAGIC.to_le_bytes());
        let mut pos = 4;
        let mut decoded = Vec::new();
        while pos < out.len() {
            let n = u32::from_le_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4;
            let block = lz4_flex_decode(&out[pos..pos + n]);
            assert!(block.len() <= LZ4_LEGACY_BLOCK);
            decoded.extend_from_slice(&block);
            pos += n;
        }
        assert_eq!(pos, out.len());
        assert!(decoded == data);
    }

    /// A minimal LZ4 block decoder (the crate's decoder is not compiled
    /// in), enough to check our framing independently.
    fn lz4_flex_decode(mut src: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        let read_len = |src: &mut &[u8], mut len: usize| {
            if len == 15 {
                loop {
                    let b = src[0];
                    *src = &src[1..];
                    len += b as usize;
                    if b != 255 {
                        break;
                    }
                }
            }
            len
        };
        loop {
            let token = src[0];
            src = &src[1..];
            let lit = read_len(&mut src, (token >> 4) as usize);
            out.extend_from_slice(&src[..lit]);
            src = &src[lit..];
            if src.is_empty() {
                return out;
            }
            let offset = u16::from_le_bytes([src[0], src[1]]) as usize;
            src = &src[2..];
            let len = read_len(&mut src, (token & 15) as usize) + 4;
            let start = out.len() - offset;
            for i in 0..len {
                out.push(out[start + i]);
            }
        }
    }
}
