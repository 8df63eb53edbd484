//! Load generator for `bench/agent`: servers, and clients that connect
//! directly, through an agent's outbound port (HTTP CONNECT), or directly
//! from a workload's address that iptables redirects to the agent.
//!
//! ```text
//! hbone_load serve SINK_ADDR ECHO_ADDR ONCE_ADDR
//! hbone_load stream  TO STREAMS SECONDS [VIA FROM]   -> {"bytes":..,"seconds":..}
//! hbone_load latency TO COUNT [VIA FROM]             -> {"p50_us":..,"p99_us":..}
//! hbone_load connect TO SECONDS CONCURRENCY [VIA FROM] -> {"connections":..,"seconds":..}
//! hbone_load hold    TO COUNT SECONDS [VIA FROM]     -> prints "held N", then holds
//! ```
//! `TO` is the workload's address and port; with `VIA FROM`, connections go
//! through the proxy `VIA` from the local address `FROM` (a workload's); with
//! `redirect FROM`, they go to `TO` from `FROM` (captured on the way).
//!
//! `connect` sends one byte to a ONCE server, which answers it and closes
//! first, as an HTTP/1.0 server would: the server's end keeps the
//! TIME_WAIT, not the client's bound port (a client that closed first would
//! run out of ports for its one address within seconds).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

#[derive(Clone, Copy)]
struct Route {
    to: SocketAddr,
    /// From a workload's address: through this proxy, or (None) to `to`.
    via: Option<(Option<SocketAddr>, IpAddr)>,
}

async fn open(r: Route) -> std::io::Result<TcpStream> {
    let Some((proxy, from)) = r.via else {
        let s = TcpStream::connect(r.to).await?;
        s.set_nodelay(true)?;
        return Ok(s);
    };
    let socket = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(from, 0))?;
    let Some(proxy) = proxy else {
        let s = socket.connect(r.to).await?;
        s.set_nodelay(true)?;
        return Ok(s);
    };
    let mut s = socket.connect(proxy).await?;
    s.set_nodelay(true)?;
    s.write_all(format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", r.to).as_bytes())
        .await?;
    let mut head = Vec::with_capacity(128);
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            return Err(std::io::Error::other("proxy closed"));
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&head).into_owned(),
        ));
    }
    Ok(s)
}

async fn serve(sink: SocketAddr, echo: SocketAddr, once: SocketAddr) {
    let sink = TcpListener::bind(sink).await.unwrap();
    let echo = TcpListener::bind(echo).await.unwrap();
    let once = TcpListener::bind(once).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = once.accept().await.unwrap();
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).await.is_ok() {
                    let _ = s.write_all(&b).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        loop {
            let (mut s, _) = sink.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    loop {
        let (mut s, _) = echo.accept().await.unwrap();
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

async fn stream(r: Route, streams: usize, seconds: f64) {
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = open(r).await.unwrap();
            let chunk = vec![0x5au8; 256 * 1024];
            let mut sent = 0u64;
            while Instant::now() < deadline {
                s.write_all(&chunk).await.unwrap();
                sent += chunk.len() as u64;
            }
            s.shutdown().await.unwrap();
            // The sink closes once it has read everything.
            let mut b = [0u8; 16];
            let _ = s.read(&mut b).await;
            total.fetch_add(sent, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"bytes\":{},\"seconds\":{secs:.4}}}",
        total.load(Ordering::Relaxed)
    );
}

async fn latency(r: Route, count: usize) {
    let mut s = open(r).await.unwrap();
    let msg = vec![7u8; 1024];
    let mut back = vec![0u8; 1024];
    let mut samples = Vec::with_capacity(count);
    for i in 0..count + 200 {
        let t = Instant::now();
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        if i >= 200 {
            samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!("{{\"p50_us\":{:.1},\"p99_us\":{:.1}}}", q(0.50), q(0.99));
}

async fn connect(r: Route, seconds: f64, concurrency: usize) {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut b = [0u8; 1];
            while Instant::now() < deadline {
                let mut s = open(r).await.unwrap();
                s.write_all(b"x").await.unwrap();
                s.read_exact(&mut b).await.unwrap();
                // The server closes first.
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await.unwrap();
                drop(s);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{{\"connections\":{},\"seconds\":{:.4}}}",
        done.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
}

async fn hold(r: Route, count: usize, seconds: f64) {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut s = open(r).await.unwrap();
        let mut b = [0u8; 1];
        s.write_all(b"x").await.unwrap();
        s.read_exact(&mut b).await.unwrap();
        held.push(s);
    }
    println!("held {}", held.len());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| -> &str { args.get(i).map(String::as_str).unwrap_or_default() };
    let via = |at: usize| {
        args.get(at + 1).map(|_| {
            let proxy = (a(at) != "redirect").then(|| a(at).parse().expect("VIA is IP:PORT"));
            (proxy, a(at + 1).parse().expect("FROM is an IP"))
        })
    };
    let route = |to: usize| Route {
        to: a(to).parse().expect("TO is IP:PORT"),
        via: via(to + 3),
    };
    // Positions: mode TO x y [VIA FROM] (hold, connect: two numbers;
    // stream: two; latency: one, so its VIA is at 3).
    match a(0) {
        "serve" => {
            serve(
                a(1).parse().unwrap(),
                a(2).parse().unwrap(),
                a(3).parse().unwrap(),
            )
            .await
        }
        "stream" => stream(route(1), a(2).parse().unwrap(), a(3).parse().unwrap()).await,
        "connect" => connect(route(1), a(2).parse().unwrap(), a(3).parse().unwrap()).await,
        "hold" => hold(route(1), a(2).parse().unwrap(), a(3).parse().unwrap()).await,
        "latency" => {
            let r = Route {
                to: a(1).parse().unwrap(),
                via: via(3),
            };
            latency(r, a(2).parse().unwrap()).await
        }
        _ => {
            eprintln!("usage: see the module documentation");
            std::process::exit(2);
        }
    }
}
