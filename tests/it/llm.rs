//! Language-model reasoning through rig's real HTTP client against a fake
//! OpenAI-compatible server on 127.0.0.1 (no network, no paid model): tool calls run
//! through Warden, budgets and failures fall back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the fake model does with each request, in order (the last one repeats).
#[derive(Clone)]
pub enum Reply {
    /// A chat completion asking for one tool call.
    Tool { name: &'static str, arguments: serde_json::Value },
    /// A final answer.
    Text(String),
    /// An HTTP error status.
    Status(u16),
    /// Answer after this many seconds.
    Slow(u64),
}

/// A fake OpenAI-compatible chat-completions server.
pub struct FakeModel {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl FakeModel {
    pub fn start(script: Vec<Reply>) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let served = Arc::new(Mutex::new(0usize));
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (script, seen, served) = (script.clone(), seen.clone(), served.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; len];
                        reader.read_exact(&mut body).unwrap();
                        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                        seen.lock().unwrap().push(json);
                        let n = {
                            let mut s = served.lock().unwrap();
                            *s += 1;
                            *s - 1
                        };
                        let reply = script.get(n).or(script.last()).cloned().unwrap();
                        let (status, body) = match reply {
                            Reply::Status(code) => (code, r#"{"error":{"message":"internal error","type":"server_error"}}"#.to_string()),
                            Reply::Slow(secs) => {
                                std::thread::sleep(std::time::Duration::from_secs(secs));
                                (200, completion(serde_json::json!({"role": "assistant", "content": "late"}), "stop"))
                            }
                            Reply::Text(t) => (200, completion(serde_json::json!({"role": "assistant", "content": t}), "stop")),
                            Reply::Tool { name, arguments } => (
                                200,
                                completion(
                                    serde_json::json!({"role": "assistant", "content": null, "tool_calls": [{
                                        "id": format!("call_{n}"), "type": "function",
                                        "function": {"name": name, "arguments": arguments.to_string()}}]}),
                                    "tool_calls",
                                ),
                            ),
                        };
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes())).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeModel { base_url, requests }
    }
}

fn completion(message: serde_json::Value, finish: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000u64, "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
    .to_string()
}

fn config(base_url: &str) -> warden::llm::LlmConfig {
    warden::llm::LlmConfig {
        provider: warden::llm::Provider::OpenaiCompatible,
        model: "fake".into(),
        base_url: Some(base_url.into()),
        api_key_env: None,
        timeout_secs: 5,
        calls_per_minute: 10,
        tokens_per_day: 100_000,
        max_turns: 4,
    }
}

#[test]
fn rig_asks_for_a_tool_warden_runs_it_and_the_model_answers() {
    use warden::llm::{LlmTool, ReasonRequest, Reasoner};
    let fake = FakeModel::start(vec![
        Reply::Tool { name: "lookup", arguments: serde_json::json!({"address": "203.0.113.7"}) },
        Reply::Text("203.0.113.7 is a known scanner.".into()),
    ]);
    let reasoner = warden::llm::rig::RigReasoner::new(&config(&fake.base_url)).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let tool = LlmTool {
        name: "lookup".into(),
        description: "Look an address up.".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"address": {"type": "string"}}, "required": ["address"]}),
        call: Arc::new(move |args| {
            seen.lock().unwrap().push(args.clone());
            Box::pin(async move { Ok(format!("{} seen scanning 40 hosts", args["address"].as_str().unwrap_or("?"))) })
        }),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = rt
        .block_on(reasoner.reason(ReasonRequest {
            agent: "test".into(),
            system: "You are Warden's test analyst.".into(),
            prompt: "investigate 203.0.113.7".into(),
            tools: vec![tool],
        }))
        .unwrap();
    assert_eq!(answer.text, "203.0.113.7 is a known scanner.");
    assert_eq!(calls.lock().unwrap().as_slice(), [serde_json::json!({"address": "203.0.113.7"})]);
    assert_eq!(answer.tool_uses.len(), 1);
    assert!(answer.tool_uses[0].decision.starts_with("ok: 203.0.113.7 seen scanning"), "{:?}", answer.tool_uses);
    assert_eq!(answer.tokens, 240);
    let reqs = fake.requests.lock().unwrap();
    assert_eq!(reqs.len(), 2);
    let first = reqs[0].to_string();
    assert!(first.contains("You are Warden's test analyst."), "system prompt sent: {first}");
    let tools: Vec<&str> = reqs[0]["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["lookup"]);
    // The second request carries the tool's result back to the model.
    assert!(reqs[1].to_string().contains("seen scanning 40 hosts"), "{}", reqs[1]);
}
