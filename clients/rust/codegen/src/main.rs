//! `log_server_client_codegen PROTO OUT_DIR`: the gRPC client of `schema/log_service.proto`
//! for clients/rust (messages and client stubs, no server), written as OUT_DIR/logservice.rs.
//! scripts/gen.py runs it; the output is committed so users need no protoc.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [proto, out_dir] = args.as_slice() else {
        eprintln!("usage: log_server_client_codegen PROTO OUT_DIR");
        return ExitCode::from(2);
    };
    let include = std::path::Path::new(proto)
        .parent()
        .map_or_else(|| ".".into(), |dir| dir.display().to_string());
    let result = tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .out_dir(out_dir)
        .compile_protos(&[proto.as_str()], &[include.as_str()]);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("log_server_client_codegen: {err}");
            ExitCode::FAILURE
        }
    }
}
