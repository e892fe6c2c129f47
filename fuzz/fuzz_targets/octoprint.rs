//! The OctoPrint-Webhooks dialect: JSON, form, multipart and query-string
//! bodies to `/webhook/octoprint` (framing in `print2mqtt_fuzz::framed`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    print2mqtt_fuzz::octoprint(data);
});
