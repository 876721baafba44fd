//! A local stand-in for CloudFormation's pre-signed `ResponseURL`: the
//! custom resources' answers are read from it.

use std::collections::BTreeMap;

use serde_json::Value;

/// One request the response URL received.
#[derive(Debug)]
pub struct Put {
    pub method: String,
    pub target: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub raw_len: usize,
}

/// A local stand-in for the pre-signed S3 URL: records each request and
/// answers with `status` (S3's 403 for an expired URL, say).
pub struct ResponseUrl {
    pub url: String,
    received: tokio::sync::mpsc::Receiver<Put>,
}

impl ResponseUrl {
    pub async fn start(status: u16) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let url = format!(
            "http://{}/arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/s/1%7CSettingsCheck%7Cr-1?X-Amz-Expires=7200&X-Amz-Signature=abc",
            listener.local_addr().unwrap()
        );
        let (tx, received) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let target = parts.next().unwrap_or_default().to_owned();
                    let mut headers = BTreeMap::new();
                    loop {
                        let mut h = String::new();
                        if stream.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        }
                    }
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    let _ = stream.read_exact(&mut body).await;
                    let said = if status == 200 {
                        String::new()
                    } else {
                        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                            .to_owned()
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{said}",
                        said.len()
                    );
                    let _ = stream.get_mut().write_all(reply.as_bytes()).await;
                    let _ = tx
                        .send(Put {
                            method,
                            target,
                            headers,
                            raw_len: body.len(),
                            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        })
                        .await;
                });
            }
        });
        Self { url, received }
    }

    pub async fn next(&mut self) -> Put {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.received.recv())
            .await
            .expect("CloudFormation was answered within 30 s")
            .expect("the response URL is up")
    }
}
