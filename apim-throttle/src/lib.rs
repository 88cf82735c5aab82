//! apim-throttle (skeleton).
