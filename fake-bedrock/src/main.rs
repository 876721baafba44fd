//! Runs the Bedrock stand-in until interrupted: `fake-bedrock [--port N]` (default 4010).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port: u16 = 4010;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" | "-p" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| std::io::Error::other("--port needs a number"))?;
            }
            "--help" | "-h" => {
                println!(
                    "usage: fake-bedrock [--port N]   (default 4010; admin API under /_admin)"
                );
                return Ok(());
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unknown argument {other:?}; try --help"
                )));
            }
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    eprintln!("fake-bedrock listening on http://{addr}");
    tokio::select! {
        r = fake_bedrock::FakeBedrock::serve_forever(addr) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
