//! `bare-server`: a warp server that answers `200 {"status":"ok"}` to every request without
//! reading its body. It is the practical ceiling the relay's reject path is compared with.
//!
//! `bare-server --listen 127.0.0.1:0` prints `listening on ADDR` as its first line. It stops on
//! SIGTERM or SIGINT.

use clap::Parser;
use warp::Filter;

#[derive(Debug, Parser)]
#[command(about = "A warp server that answers 200 to everything (the load harness's ceiling)")]
struct Args {
    /// Address to listen on (port 0: any free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

fn ok() -> &'static str {
    r#"{"status":"ok"}"#
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same runtime shape as the relay: one worker per CPU.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening on {}", listener.local_addr()?);
        let routes = warp::any().map(ok);
        let stop = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        warp::serve(routes).incoming(listener).graceful(stop).run().await;
        anyhow::Ok(())
    })
}
