//! A TCP proxy between a client and a server that can drop the network: [`TcpProxy::cut_for`]
//! closes every connection through it and stops listening (new connections are refused) for
//! a while, then listens on the same port again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running proxy; stops on drop.
pub struct TcpProxy {
    addr: SocketAddr,
    cut_tx: mpsc::Sender<Duration>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = listen("127.0.0.1:0".parse().expect("address parses"));
        let addr = listener.local_addr().expect("bound address");
        let (cut_tx, cut_rx) = mpsc::channel(4);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve(listener, target, cut_rx, Arc::clone(&accepted)));
        Self {
            addr,
            cut_tx,
            accepted,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes every open connection now and refuses new ones for `outage`.
    pub async fn cut_for(&self, outage: Duration) {
        self.cut_tx.send(outage).await.expect("proxy running");
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn listen(addr: SocketAddr) -> TcpListener {
    // SO_REUSEADDR: the port is bound again after an outage while closed connections of the
    // previous listener are still in TIME_WAIT.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("proxy port binds");
    socket.listen(1024).expect("proxy listens")
}

async fn serve(
    mut listener: TcpListener,
    target: SocketAddr,
    mut cut_rx: mpsc::Receiver<Duration>,
    accepted: Arc<AtomicU64>,
) {
    let addr = listener.local_addr().expect("bound address");
    let mut connections = CancellationToken::new();
    loop {
        tokio::select! {
            outage = cut_rx.recv() => {
                let Some(outage) = outage else { return };
                connections.cancel();
                connections = CancellationToken::new();
                drop(listener);
                tokio::time::sleep(outage).await;
                listener = listen(addr);
            }
            client = listener.accept() => {
                let Ok((client, _)) = client else { continue };
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(pipe(client, target, connections.clone()));
            }
        }
    }
}

async fn pipe(mut client: TcpStream, target: SocketAddr, cut: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        () = cut.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
}
