//! The OctoEverywhere dialect: any bytes as a JSON body to
//! `/webhook/octoeverywhere`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    print2mqtt_fuzz::octoeverywhere(data);
});
