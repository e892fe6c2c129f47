//! Event -> messages: NUL-separated bodies parsed, applied to one printer
//! table, rendered with Home Assistant discovery, and checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    print2mqtt_fuzz::messages(data);
});
