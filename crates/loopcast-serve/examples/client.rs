//! A small Rust client of `loopcast serve`: posts `examples/requests/forecast.json` and
//! prints each series' median forecast of its first target channel.
//!
//! ```sh
//! cargo run --release -p loopcast-cli -- serve &
//! cargo run --release -p loopcast-serve --example client -- http://127.0.0.1:8080
//! ```

use loopcast_serve::api::ForecastResponse;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/requests/forecast.json"))?;
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/forecast"))
        .header("content-type", "application/json")
        .body(body);
    if let Ok(key) = std::env::var("LOOPCAST_API_KEY") {
        request = request.bearer_auth(key);
    }
    let response = request.send().await?;
    if !response.status().is_success() {
        // Errors are application/problem+json naming the field at fault.
        return Err(format!("{}: {}", response.status(), response.text().await?).into());
    }
    let forecast: ForecastResponse = response.json().await?;
    for series in &forecast.series {
        let channel = &series.channels[0];
        let median = channel.quantiles.iter().find(|q| q.level == 0.5).ok_or("no median level")?;
        let loops: u32 = series.loops.iter().sum();
        println!(
            "{} {}: median {:.1} → {:.1} over {} steps ({:.2} loops per step), from {}",
            series.id,
            channel.name,
            median.values[0],
            median.values[median.values.len() - 1],
            median.values.len(),
            f64::from(loops) / series.loops.len() as f64,
            series.timestamps[0]
        );
    }
    Ok(())
}
