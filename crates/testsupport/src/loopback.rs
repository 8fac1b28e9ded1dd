//! The part every loopback test server here shares: a listener on a free 127.0.0.1
//! port, a thread per connection running the server's own conversation, what the
//! conversations recorded (mails, requests) kept for the test to wait for, and a stop
//! when the server is dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What connections recorded, and a way to wait for more.
pub(crate) struct Seen<T> {
    items: Mutex<Vec<T>>,
    arrived: Condvar,
    stop: AtomicBool,
}

impl<T> Seen<T> {
    pub(crate) fn record(&self, item: T) {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
        self.arrived.notify_all();
    }

    /// How many were recorded so far.
    pub(crate) fn count(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the server is being dropped (a connection that holds on must let go).
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Holds a connection open without answering until the server is dropped.
    pub(crate) fn hold(&self, stream: TcpStream) {
        while !self.stopping() {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(stream);
    }
}

type Conversation<T> = dyn Fn(TcpStream, &Seen<T>) + Send + Sync;

pub(crate) struct Loopback<T> {
    addr: SocketAddr,
    seen: Arc<Seen<T>>,
    accept: Option<JoinHandle<()>>,
}

impl<T: Clone + Send + 'static> Loopback<T> {
    /// Listens on a free loopback port and runs `talk` on each connection.
    pub(crate) fn start(talk: impl Fn(TcpStream, &Seen<T>) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("binding a loopback test server: {e}"));
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let seen = Arc::new(Seen {
            items: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let talk: Arc<Conversation<T>> = Arc::new(talk);
        let accept = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if seen.stopping() {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    // A client that goes quiet must not keep a thread forever.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let (seen, talk) = (seen.clone(), talk.clone());
                    std::thread::spawn(move || talk(stream, &seen));
                }
            })
        };
        Loopback {
            addr,
            seen,
            accept: Some(accept),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn items(&self) -> Vec<T> {
        self.seen
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `n` were recorded, at most `timeout`; what was recorded
    /// by then (fewer than `n` if they did not come).
    pub(crate) fn wait_for(&self, n: usize, timeout: Duration) -> Vec<T> {
        let deadline = Instant::now() + timeout;
        let mut items = self.seen.items.lock().unwrap_or_else(|e| e.into_inner());
        while items.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            items = self
                .seen
                .arrived
                .wait_timeout(items, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        items.clone()
    }
}

impl<T> Drop for Loopback<T> {
    fn drop(&mut self) {
        self.seen.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A loopback port held bound but not listening: connections to it are refused, and
/// no other server (of this test process or another) can be given it meanwhile, as
/// could happen to a port that was only free when asked.
pub(crate) struct Refusing {
    _socket: std::os::fd::OwnedFd,
    port: u16,
}

impl Refusing {
    pub(crate) fn bind() -> Refusing {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a fresh descriptor that we own from here on;
        // the address structs are zeroed and filled as the kernel expects.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            addr.sin_port = 0;
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len);
            assert!(bound == 0, "bind: {}", std::io::Error::last_os_error());
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut got_len = len;
            let named =
                libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut got_len);
            assert!(
                named == 0,
                "getsockname: {}",
                std::io::Error::last_os_error()
            );
            Refusing {
                _socket: socket,
                port: u16::from_be(got.sin_port),
            }
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}
