//! A command on its own pseudo-terminal, as under an SSH session: it leads a new session whose
//! controlling terminal is the pty, with stdin, stdout and stderr on it. Hanging up (closing
//! the master side, as sshd does when the connection drops) makes the kernel send it SIGHUP,
//! and its later writes to the terminal fail.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A child on a pty; the terminal's output is read (and kept) until [`OnPty::hang_up`].
pub struct OnPty {
    pub child: Child,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Vec<u8>>>,
}

impl OnPty {
    /// Spawn `cmd` as a session leader with the pty as its controlling terminal.
    pub fn spawn(cmd: &mut Command) -> io::Result<OnPty> {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors; the name, termios and winsize are optional.
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // Not inherited: a master left open in the child would keep the terminal up.
        for fd in [master, slave] {
            // SAFETY: setting a flag on a descriptor just opened.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(slave);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        // The terminal is drained (a full pty would block the child's writes); the master is
        // closed when asked to, which hangs the terminal up.
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::SeqCst) {
                let mut pfd = libc::pollfd {
                    fd: master.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let n = unsafe { libc::poll(&mut pfd, 1, 50) };
                if n > 0 {
                    // SAFETY: reading into a buffer of its length.
                    let k = unsafe { libc::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) };
                    if k <= 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[..k as usize]);
                }
            }
            drop(master);
            out
        });
        Ok(OnPty {
            child,
            stop,
            reader: Some(reader),
        })
    }

    /// Close the terminal's master side; what the terminal showed until then.
    pub fn hang_up(&mut self) -> String {
        self.stop.store(true, Ordering::SeqCst);
        let out = self
            .reader
            .take()
            .and_then(|r| r.join().ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for OnPty {
    fn drop(&mut self) {
        self.hang_up();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
