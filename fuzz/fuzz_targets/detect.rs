//! Dialect and encoding detection: any framed request to `/webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    print2mqtt_fuzz::detect(data);
});
