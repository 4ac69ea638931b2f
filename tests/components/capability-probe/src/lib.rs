//! HTTP middleware for the dependency-isolation tests (`tests/tests/e2e/isolation.rs`): before
//! passing a request on, it tries each configuration-bearing capability and appends one
//! `x-probe` response header saying what each attempt got, e.g.
//! `variables=ok:s3cret;spin-kv=ok;wasi-kv=ok:1;http=200;env=ok:probe;files=0;tcp=denied`.
//!
//! What it tries, from request headers (absent: that probe is skipped):
//! * `variables`: reads the variable `probe_secret`;
//! * `spin-kv` / `wasi-kv`: opens the store `default` with `spin:key-value` and with
//!   `wasi:keyvalue` (and increments the key `probe`, atomically);
//! * `http`: `GET` of the URL in `x-probe-url` through `wasi:http/client`;
//! * `env`: the environment variable `PROBE_ENV`;
//! * `files`: the preopened directories (the number of entries of `/`); with
//!   `x-probe-read: /a,/b`, each file's content as `compact` keeps it (`read0`, `read1`, ...), and with
//!   `x-probe-write: /c`, whether writing the file succeeds (`write`);
//! * `tcp`: a TCP connection to the address in `x-probe-tcp` (`wasi:sockets`).

/// One probe's outcome, as it appears in the report.
pub fn outcome<T: std::fmt::Display, E: std::fmt::Debug>(result: Result<T, E>) -> String {
    match result {
        Ok(value) => format!("ok:{value}"),
        Err(error) => format!("err:{}", compact(&format!("{error:?}"))),
    }
}

/// Error text reduced to what fits a header value: letters, digits and a few separators.
pub fn compact(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' ' | ':' | '(' | ')'))
        .take(120)
        .collect()
}

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_fit_a_header() {
        assert_eq!(outcome::<_, ()>(Ok(3)), "ok:3");
        assert_eq!(
            outcome::<u8, _>(Err("Undefined(\"x\"); rest")),
            "err:Undefined(x) rest"
        );
    }
}
