//! Times `complete` natively on a grounded prompt like the RAG bench's (the question
//! "What does the web application firewall block?" over sections of data/), and prints
//! the answer and usage so a change can be checked for the same output.
//!
//! `cargo run --release -p completion-extractive --example rag_prompt [iterations]`

use completion_extractive::{Message, Options, Role, complete};

const INSTRUCTIONS: &str = "You are chatgate, an assistant that answers only from the sources below. Cite every fact with its source marker, like [doc1]. If the sources do not contain the answer, say that you could not find it in the documents.";

fn sections(file: &str) -> Vec<(String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/");
    let text = std::fs::read_to_string(format!("{path}{file}")).unwrap();
    let mut document = String::new();
    let mut out = Vec::new();
    for block in text.split("\n## ") {
        if let Some(heading) = block.strip_prefix("# ") {
            document = heading.lines().next().unwrap_or_default().to_string();
            continue;
        }
        let (heading, body) = block.split_once('\n').unwrap_or((block, ""));
        let body: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
        out.push((
            format!("{document} > {heading}"),
            format!("data/{file}"),
            body.join("\n"),
        ));
    }
    out
}

fn main() {
    let iterations: usize = std::env::args().nth(1).map_or(200, |n| n.parse().unwrap());
    let mut passages = sections("application-gateway-waf.md");
    passages.truncate(3);
    passages.extend(sections("cross-site-scripting.md").into_iter().take(1));
    passages.extend(sections("path-traversal.md").into_iter().take(1));
    let mut system = format!("{INSTRUCTIONS}\n\nSources:");
    for (n, (title, location, content)) in passages.iter().enumerate() {
        if n > 0 {
            system.push('\n');
        }
        system.push_str(&format!("\n[doc{}] {title} ({location})\n{content}", n + 1));
    }
    let messages = [
        Message {
            role: Role::System,
            content: system.clone(),
        },
        Message {
            role: Role::User,
            content: "What does the web application firewall block?".into(),
        },
    ];
    let start = std::time::Instant::now();
    let mut last = None;
    for _ in 0..iterations {
        last = Some(complete(&messages, &Options::default()).unwrap());
    }
    let elapsed = start.elapsed();
    let last = last.unwrap();
    println!(
        "prompt {} bytes; {:?} per call",
        system.len(),
        elapsed / iterations as u32
    );
    println!("{:?}", last.usage);
    println!("{}", last.content);
}
