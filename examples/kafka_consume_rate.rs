//! Broker-only consume rate with the client library Driftwatch uses (rdkafka): reads a topic
//! from the start with a fresh group, copying every payload as the Kafka source does, and
//! prints `messages seconds rate`. Used by scripts/bench-kafka.sh.
//!
//! `cargo run --release --example kafka_consume_rate -- BROKERS TOPIC MESSAGES`

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, count] = args.as_slice() else {
        eprintln!("usage: kafka_consume_rate BROKERS TOPIC MESSAGES");
        std::process::exit(2);
    };
    let expected: usize = count.parse().expect("MESSAGES is a number");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("rate-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut bytes = 0usize;
    let mut n = 0usize;
    let mut start = None;
    while n < expected {
        match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
            Ok(Ok(m)) => {
                start.get_or_insert_with(Instant::now);
                let payload = m.payload().map(<[u8]>::to_vec).unwrap_or_default();
                bytes += payload.len();
                n += 1;
            }
            Ok(Err(e)) => eprintln!("consumer error: {e}"),
            Err(_) => break,
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("{n} {secs:.3} {:.0} {bytes}", n as f64 / secs.max(1e-9));
}
