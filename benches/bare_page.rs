//! The reference for `scripts/bench-catalog.sh` (issue 19): the fastest a page of the
//! catalog's size can be served by actix-web on this machine — one route, a fixed body, no
//! middleware, no templates, no database, the same worker count as the shop's default.
//!
//!     cargo bench --bench bare_page -- --port 8099 --bytes 6400
//!
//! It serves `GET /` until it is killed; the script starts it and stops it by its pid.

use actix_web::{web, App, HttpResponse, HttpServer};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(8099);
    let bytes: usize = arg("--bytes")
        .and_then(|b| b.parse().ok())
        .unwrap_or(6400)
        .min(1 << 20);
    // A page of that many bytes: the reference should move as much data as the catalog.
    let mut page = String::from("<!doctype html><html><body><p>");
    while page.len() < bytes.saturating_sub(18) {
        page.push('x');
    }
    page.push_str("</p></body></html>");
    let page = web::Bytes::from(page);
    actix_web::rt::System::new().block_on(async move {
        println!("bare page of {} bytes on 127.0.0.1:{port}", page.len());
        HttpServer::new(move || {
            let page = page.clone();
            App::new().route(
                "/",
                web::get().to(move || {
                    let page = page.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .body(page)
                    }
                }),
            )
        })
        .bind(("127.0.0.1", port))?
        .run()
        .await
    })
}
