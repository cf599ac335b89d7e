//! Any request body: `decode_call` returns a call or a decode error, never panics,
//! and whatever it decodes survives being answered (encoded) again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = corral::rpc::decode_call(data) {
        assert!(!call.method.trim().is_empty());
        let _ = corral::rpc::encode_response(dxr::Value::Array(call.params));
    }
});
