//! Lambda's runtime API on a local port, for tests that run the built
//! function as Lambda runs it (`AWS_LAMBDA_RUNTIME_API`).

use serde_json::Value;

/// Lambda's runtime API, as far as the function uses it: it hands out the
/// events `invoke` is given, one per `next` request, and returns the answer
/// the function posts back.
pub struct RuntimeApi {
    pub address: String,
    events: tokio::sync::mpsc::Sender<Value>,
    answers: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(String, Value)>>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        use std::sync::Arc;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let address = listener.local_addr().unwrap().to_string();
        let (events, event_rx) = tokio::sync::mpsc::channel::<Value>(4);
        let (answer_tx, answers) = tokio::sync::mpsc::channel(4);
        let event_rx = Arc::new(tokio::sync::Mutex::new(event_rx));
        tokio::spawn(async move {
            let mut next_id = 0u32;
            while let Ok((stream, _)) = listener.accept().await {
                let (event_rx, answer_tx) = (event_rx.clone(), answer_tx.clone());
                next_id += 1000;
                let first_id = next_id;
                tokio::spawn(serve(stream, event_rx, answer_tx, first_id));
            }
        });
        Self {
            address,
            events,
            answers: tokio::sync::Mutex::new(answers),
        }
    }

    /// One invocation of `function`: its answer. Fails at once, with what
    /// the function said, if it stops instead.
    pub async fn invoke(&self, function: &mut std::process::Child, event: Value) -> Value {
        let (kind, answer) = self.invoke_any(function, event.clone()).await;
        assert_eq!(kind, "response", "{event}: {answer}");
        answer
    }

    /// One invocation of `function`: how it ended (`response` or `error`,
    /// as the function posted it) and what it said.
    pub async fn invoke_any(
        &self,
        function: &mut std::process::Child,
        event: Value,
    ) -> (String, Value) {
        self.events
            .send(event.clone())
            .await
            .expect("queue the event");
        let mut answers = self.answers.lock().await;
        let started = std::time::Instant::now();
        loop {
            if let Ok(answer) =
                tokio::time::timeout(std::time::Duration::from_millis(100), answers.recv()).await
            {
                return answer.expect("the runtime API is up");
            }
            if let Ok(Some(status)) = function.try_wait() {
                let mut said = String::new();
                if let Some(mut err) = function.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut said);
                }
                panic!("the function stopped ({status}) instead of answering {event}: {said}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "no answer to {event} within 60 s"
            );
        }
    }
}

/// One connection: HTTP/1.1 requests one after the other (the runtime
/// client keeps its connection).
async fn serve(
    stream: tokio::net::TcpStream,
    events: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Value>>>,
    answers: tokio::sync::mpsc::Sender<(String, Value)>,
    mut request_id: u32,
) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default();
        let reply = if path.ends_with("/invocation/next") {
            let Some(event) = events.lock().await.recv().await else {
                return;
            };
            request_id += 1;
            let body = event.to_string();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 60_000;
            format!(
                "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-{request_id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bedrock-batch-monitor\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            let kind = path.rsplit('/').next().unwrap_or_default().to_owned();
            let answer = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            let _ = answers.send((kind, answer)).await;
            "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}".to_owned()
        };
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
