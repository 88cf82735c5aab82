//! Fuzzes OpenAPI import: any bytes either become a definition whose operations build a valid
//! API, or are refused with a 4xx error naming where the problem is. Never a panic, never a 5xx.
#![no_main]

use apim_core::ApimError;
use apim_portal::publisher::openapi_import::{generate, parse_openapi};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_openapi(data) {
        Ok(def) => {
            assert!(def.operations.len() <= apim_portal::publisher::openapi_import::MAX_OPERATIONS);
            for op in &def.operations {
                assert!(op.target.starts_with('/'));
            }
            // what we generate from the operations must read back
            let api: Result<apim_core::model::Api, _> = serde_json::from_value(serde_json::json!({
                "name": "Fuzz", "context": "/fuzz", "version": "1",
                "endpointConfig": {"endpoint_type": "http", "production_endpoints": {"url": "http://localhost:1"}},
                "operations": def.operations,
            }));
            if let Ok(api) = api {
                let again = apim_portal::publisher::openapi_import::read_definition(generate(&api));
                assert!(again.is_ok(), "generated definition does not read back: {again:?}");
            }
        }
        Err(e) => assert!(
            matches!(e, ApimError::Validation { .. } | ApimError::PayloadTooLarge(_)),
            "unexpected error class: {e:?}"
        ),
    }
});
