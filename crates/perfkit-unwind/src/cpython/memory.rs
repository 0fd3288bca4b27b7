//! Reading another process's memory: the one syscall of the frame reader,
//! behind a trait so that tests give it made-up memory.

use std::io;

/// Memory of a process, read at addresses.
pub trait Memory {
    /// Fills `buf` from `addr`, whole or not at all.
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A live process's memory, through `process_vm_readv(2)` (needs the
/// right to ptrace it: root, or CAP_SYS_PTRACE).
#[derive(Clone, Copy, Debug)]
pub struct ProcessMemory {
    pid: u32,
}

impl ProcessMemory {
    /// The memory of process `pid`.
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let remote = libc::iovec { iov_base: addr as usize as *mut libc::c_void, iov_len: buf.len() };
        // SAFETY: `local` describes `buf`, writable for its length; the
        // remote range is only read by the kernel, which checks it.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != buf.len() {
            // A range that ends in an unmapped page.
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use std::{collections::BTreeMap, io};

    /// Made-up memory: regions at addresses.
    #[derive(Default)]
    pub(crate) struct FakeMemory {
        pub regions: BTreeMap<u64, Vec<u8>>,
    }

    impl FakeMemory {
        pub fn put(&mut self, addr: u64, bytes: &[u8]) {
            self.regions.insert(addr, bytes.to_vec());
        }
        pub fn put_u64(&mut self, addr: u64, value: u64) {
            self.put(addr, &value.to_le_bytes());
        }
    }

    impl super::Memory for FakeMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
            let fault = || io::Error::from_raw_os_error(libc::EFAULT);
            let (start, bytes) = self.regions.range(..=addr).next_back().ok_or_else(fault)?;
            let from = usize::try_from(addr - start).map_err(|_| fault())?;
            let to = from.checked_add(buf.len()).filter(|&e| e <= bytes.len()).ok_or_else(fault)?;
            buf.copy_from_slice(&bytes[from..to]);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_memory_and_refuses_unmapped_addresses() {
        let data = *b"perfkit reads memory";
        let mem = ProcessMemory::new(std::process::id());
        let mut buf = [0u8; 20];
        mem.read(data.as_ptr() as u64, &mut buf).unwrap();
        assert_eq!(&buf, &data);
        assert!(mem.read(8, &mut buf).is_err(), "page zero is never mapped");
        assert!(mem.read(u64::MAX - 4, &mut buf).is_err());
    }
}
