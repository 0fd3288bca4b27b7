//! A writer of uncompressed `newc` cpio archives, the format the kernel
//! unpacks as an initramfs (Documentation/driver-api/early-userspace/
//! buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header (`070701` and 13 fields of 8 hex
//! digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
//! devminor, rdevmajor, rdevminor, namesize, check), the NUL-terminated
//! name padded to a multiple of 4 bytes (counting the header), and the data
//! padded to a multiple of 4. The archive ends with the entry `TRAILER!!!`.
//!
//! The kernel does not create missing parent directories, so the writer
//! emits every ancestor of a path (once) before the path itself. Owners are
//! root and times are 0: the same inputs give the same bytes.

use std::{
    collections::HashSet,
    fs,
    io::{self, Read, Write},
    path::Path,
};

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";

/// Writes a `newc` archive to `W`. Names are given without a leading `/`
/// (one is stripped if present).
pub struct Writer<W: Write> {
    out: W,
    /// Bytes written so far (for the padding).
    offset: u64,
    /// The next inode number.
    ino: u32,
    /// Directories (and other names) already written.
    written: HashSet<String>,
}

impl<W: Write> Writer<W> {
    /// A writer of a new archive into `out`.
    pub fn new(out: W) -> Self {
        Self { out, offset: 0, ino: 1, written: HashSet::new() }
    }

    /// A directory (and its missing ancestors).
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        let name = clean(name)?;
        self.parents(&name)?;
        if self.written.insert(name.clone()) {
            self.entry(&name, S_IFDIR | (perm & 0o7777), 2, 0, &mut io::empty())?;
        }
        Ok(())
    }

    /// A regular file with the given content.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.file_from(name, perm, data.len() as u64, &mut &data[..])
    }

    /// A regular file with the content of the file at `src` (symbolic
    /// links followed), copied as it is read.
    pub fn file_from_path(&mut self, name: &str, perm: u32, src: &Path) -> io::Result<()> {
        let mut f = fs::File::open(src)?;
        let len = f.metadata()?.len();
        self.file_from(name, perm, len, &mut f)
    }

    /// A symbolic link `name` pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let name = clean(name)?;
        self.parents(&name)?;
        if !self.written.insert(name.clone()) {
            return Err(duplicate(&name));
        }
        self.entry(&name, S_IFLNK | 0o777, 1, target.len() as u64, &mut target.as_bytes())
    }

    /// A character device node (such as `dev/console`, 5:1).
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        let name = clean(name)?;
        self.parents(&name)?;
        if !self.written.insert(name.clone()) {
            return Err(duplicate(&name));
        }
        let header = Header { mode: S_IFCHR | (perm & 0o7777), nlink: 1, size: 0, rdev: (major, minor) };
        self.raw_entry(&name, header, &mut io::empty())
    }

    /// Whether `name` was written already.
    pub fn contains(&self, name: &str) -> bool {
        clean(name).is_ok_and(|n| self.written.contains(&n))
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.ino = 0;
        self.raw_entry(TRAILER, Header { mode: 0, nlink: 1, size: 0, rdev: (0, 0) }, &mut io::empty())?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn file_from(&mut self, name: &str, perm: u32, len: u64, data: &mut dyn Read) -> io::Result<()> {
        let name = clean(name)?;
        self.parents(&name)?;
        if !self.written.insert(name.clone()) {
            return Err(duplicate(&name));
        }
        self.entry(&name, S_IFREG | (perm & 0o7777), 1, len, data)
    }

    /// Writes each missing ancestor directory of `name`.
    fn parents(&mut self, name: &str) -> io::Result<()> {
        let mut end = 0;
        while let Some(i) = name[end..].find('/') {
            let dir = &name[..end + i];
            if self.written.insert(dir.to_owned()) {
                self.entry(dir, S_IFDIR | 0o755, 2, 0, &mut io::empty())?;
            }
            end += i + 1;
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, size: u64, data: &mut dyn Read) -> io::Result<()> {
        self.raw_entry(name, Header { mode, nlink, size, rdev: (0, 0) }, data)
    }

    fn raw_entry(&mut self, name: &str, h: Header, data: &mut dyn Read) -> io::Result<()> {
        let size = u32::try_from(h.size).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{name} is {} bytes, over newc's 4 GiB", h.size))
        })?;
        let namesize = name.len() + 1;
        let fields = [self.ino, h.mode, 0, 0, h.nlink, 0, size, 0, 0, h.rdev.0, h.rdev.1, namesize as u32, 0];
        self.ino += 1;
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        let copied = io::copy(&mut data.take(h.size), &mut self.out)?;
        if copied != h.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: expected {} bytes, read {copied} (did the file change?)", h.size),
            ));
        }
        self.offset += copied;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Zeros up to the next multiple of 4.
    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.offset % 4) as usize) % 4;
        self.put(&[0; 3][..n])
    }
}

/// The fields of a header that vary between entries.
struct Header {
    mode: u32,
    nlink: u32,
    size: u64,
    rdev: (u32, u32),
}

/// `name` without a leading `/` or `./`, refused when empty, with a NUL,
/// or with `.`/`..` components.
fn clean(name: &str) -> io::Result<String> {
    let n = name.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
    let bad = n.is_empty() || n.contains('\0') || n.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad || n == TRAILER {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad archive path {name:?}")));
    }
    Ok(n.to_owned())
}

fn duplicate(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, format!("{name} is already in the archive"))
}

/// One entry read back from an archive (for tests and checks).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub nlink: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Parses a `newc` archive up to its trailer, checking the magic, the
/// padding and the name terminators.
#[cfg(test)]
pub fn parse(mut bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let total = bytes.len();
    let mut entries = Vec::new();
    loop {
        let at = total - bytes.len();
        if bytes.len() < 110 {
            return Err(format!("truncated header at {at}"));
        }
        if &bytes[..6] != b"070701" {
            return Err(format!("bad magic at {at}"));
        }
        let field = |i: usize| -> Result<u32, String> {
            let s = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).map_err(|e| e.to_string())?;
            u32::from_str_radix(s, 16).map_err(|e| format!("field {i} at {at}: {e}"))
        };
        let (mode, nlink, size) = (field(1)?, field(4)?, field(6)? as usize);
        let rdev = (field(9)?, field(10)?);
        let namesize = field(11)? as usize;
        let name_end = 110 + namesize;
        let data_start = name_end.div_ceil(4) * 4;
        let data_end = data_start + size;
        let next = data_end.div_ceil(4) * 4;
        if bytes.len() < next || namesize == 0 {
            return Err(format!("truncated entry at {at}"));
        }
        if bytes[name_end - 1] != 0 || bytes[110..name_end - 1].contains(&0) {
            return Err(format!("name at {at} not NUL-terminated"));
        }
        if bytes[name_end..data_start].iter().chain(&bytes[data_end..next]).any(|&b| b != 0) {
            return Err(format!("non-zero padding in the entry at {at}"));
        }
        let name = String::from_utf8(bytes[110..name_end - 1].to_vec()).map_err(|e| e.to_string())?;
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(Entry { name, mode, nlink, rdev, data: bytes[data_start..data_end].to_vec() });
        bytes = &bytes[next..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_files_dirs_links_and_devices() {
        let mut w = Writer::new(Vec::new());
        w.file("init", 0o755, b"#!/bin/sh\necho hi\n").unwrap();
        w.file("/usr/lib/x86_64-linux-gnu/libc.so.6", 0o644, b"\x7fELF").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.dir("tmp", 0o1777).unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.file("empty", 0o644, b"").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "init",
                "usr",
                "usr/lib",
                "usr/lib/x86_64-linux-gnu",
                "usr/lib/x86_64-linux-gnu/libc.so.6",
                "bin",
                "bin/sh",
                "tmp",
                "dev",
                "dev/console",
                "empty"
            ]
        );
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("init").data, b"#!/bin/sh\necho hi\n");
        assert_eq!(get("init").mode, 0o100_755);
        assert_eq!(get("usr/lib").mode, 0o040_755);
        assert_eq!(get("bin/sh").mode, 0o120_777);
        assert_eq!(get("bin/sh").data, b"busybox");
        assert_eq!(get("tmp").mode, 0o041_777);
        assert_eq!(get("dev/console").mode, 0o020_600);
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("empty").data, b"");
        assert_eq!(get("usr/lib/x86_64-linux-gnu/libc.so.6").data, b"\x7fELF");
    }

    #[test]
    fn header_layout_is_newc() {
        let mut w = Writer::new(Vec::new());
        w.file("a", 0o644, b"xyz").unwrap();
        let bytes = w.finish().unwrap();
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        let fields = ["00000001", "000081a4", "00000000", "00000000", "00000001", "00000000", "00000003"];
        let rest = ["00000000", "00000000", "00000000", "00000000", "00000002", "00000000"];
        assert_eq!(header, format!("070701{}{}", fields.concat(), rest.concat()));
        // 110 + "a\0" = 112 (aligned), then "xyz" + 1 byte of padding.
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..116], b"xyz\0");
        assert_eq!(&bytes[116..122], b"070701");
        assert!(std::str::from_utf8(&bytes[116..]).unwrap().contains("TRAILER!!!"));
    }

    #[test]
    fn refuses_bad_and_duplicate_names() {
        let mut w = Writer::new(Vec::new());
        for bad in ["", "/", "a/../b", "a//b", "TRAILER!!!", "x\0y"] {
            assert!(w.file(bad, 0o644, b"").is_err(), "{bad:?}");
        }
        w.file("a/b", 0o644, b"1").unwrap();
        assert!(w.file("a/b", 0o644, b"2").is_err());
        assert!(w.symlink("a/b", "c").is_err());
        w.dir("a", 0o755).unwrap();
        assert!(w.contains("/a/b") && w.contains("a"));
    }

    #[test]
    fn parser_rejects_corruption() {
        let mut w = Writer::new(Vec::new());
        w.file("f", 0o644, b"data").unwrap();
        let good = w.finish().unwrap();
        let mut bad = good.clone();
        bad[0] = b'1';
        assert!(parse(&bad).is_err());
        assert!(parse(&good[..good.len() - 20]).is_err());
    }
}
