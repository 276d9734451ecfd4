//! The shared vectors (schema/vectors): this client decodes each case's packed bytes to its
//! fields, and its own encoding of the fields decodes back to them (over gRPC: protobuf).

mod common;

use log_server_client::frame::{
    decode_packed, encode_frame, FrameDecoder, DEFAULT_MAX_FRAME_BYTES,
};

#[test]
fn every_case_decodes_to_its_fields() {
    let cases = common::load_cases();
    assert!(cases.len() > 10, "the vectors file has its cases");
    for case in &cases {
        let decoded =
            decode_packed(&case.packed).unwrap_or_else(|err| panic!("{}: {err}", case.name));
        assert_eq!(decoded, case.message, "case {}", case.name);
    }
}

#[test]
fn every_case_encodes_to_a_frame_that_decodes_to_its_fields() {
    for case in common::load_cases() {
        let mut frame = Vec::new();
        encode_frame(&case.message, DEFAULT_MAX_FRAME_BYTES, &mut frame).unwrap();
        let mut decoder = FrameDecoder::default();
        decoder.feed(&frame);
        let payload = decoder.next_payload().expect("one whole frame");
        assert_eq!(
            decode_packed(&payload).unwrap(),
            case.message,
            "case {}",
            case.name
        );
        assert!(decoder.next_payload().is_none());
    }
}

#[cfg(feature = "grpc")]
#[test]
fn every_case_survives_protobuf() {
    use log_server_client::logservice::LogRequest;
    use prost::Message as _;
    for case in common::load_cases() {
        let request = log_server_client::to_request(&case.message);
        let decoded = LogRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.message, case.message.message, "case {}", case.name);
        assert_eq!(decoded.level, case.message.level as i32);
        let pairs: Vec<(String, String)> = decoded
            .attributes
            .iter()
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect();
        assert_eq!(pairs, case.message.attributes, "case {}", case.name);
        assert_eq!(decoded, request);
    }
}
