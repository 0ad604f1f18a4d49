//! stdio for the MCP transport without helper threads.
//!
//! `tokio::io::stdin()`/`stdout()` hand every read and write to the blocking thread pool, which
//! costs two thread wake-ups per message: most of the CPU of a small tool call. MCP clients
//! connect servers with pipes, and pipes can be polled, so when both ends are pipes or sockets
//! they are switched to non-blocking mode and driven by tokio's reactor on the runtime's own
//! thread. Anything else (a terminal, a regular file) keeps tokio's portable stdio.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustix::fs::{FileType, OFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A reader and writer for the MCP transport.
pub type Stdio = (Box<dyn AsyncRead + Send + Unpin>, Box<dyn AsyncWrite + Send + Unpin>);

/// stdin and stdout as async streams, on the reactor when both are pipes or sockets.
pub fn stdio() -> Stdio {
    let (input, output) = (io::stdin(), io::stdout());
    // Decide before touching any flag: a non-blocking stdin behind tokio's blocking stdio would
    // fail with EAGAIN.
    if pollable_kind(input.as_fd())
        && pollable_kind(output.as_fd())
        && let Some((reader, input_flags)) = make_async(input.as_fd())
    {
        match make_async(output.as_fd()) {
            Some((writer, _)) => return (Box::new(PipeReader(reader)), Box::new(PipeWriter(writer))),
            None => {
                let _ = rustix::fs::fcntl_setfl(reader.get_ref(), input_flags);
            }
        }
    }
    (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()))
}

fn pollable_kind(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd)
        .is_ok_and(|st| matches!(FileType::from_raw_mode(st.st_mode), FileType::Fifo | FileType::Socket))
}

/// A registered non-blocking duplicate of `fd` (the mode is shared with the original), and the
/// flags it had before, so a failed set-up can put them back.
fn make_async(fd: BorrowedFd<'_>) -> Option<(AsyncFd<OwnedFd>, OFlags)> {
    let owned = fd.try_clone_to_owned().ok()?;
    let flags = rustix::fs::fcntl_getfl(&owned).ok()?;
    rustix::fs::fcntl_setfl(&owned, flags | OFlags::NONBLOCK).ok()?;
    let restore = owned.try_clone().ok();
    match register(owned) {
        Some(registered) => Some((registered, flags)),
        None => {
            if let Some(fd) = restore {
                let _ = rustix::fs::fcntl_setfl(&fd, flags);
            }
            None
        }
    }
}

#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: `register` requires that the descriptor stays open and is not replaced while it is
    // registered. The `OwnedFd` (our own duplicate of fd 0 or 1) moves into the `AsyncFd`, which
    // is its only owner, never exposes it mutably, and deregisters before dropping it.
    unsafe { AsyncFd::register(fd) }.ok()
}

struct PipeReader(AsyncFd<OwnedFd>);

impl AsyncRead for PipeReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| rustix::io::read(fd.get_ref().as_fd(), &mut *unfilled).map_err(io::Error::from)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

struct PipeWriter(AsyncFd<OwnedFd>);

impl AsyncWrite for PipeWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), data).map_err(io::Error::from)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
