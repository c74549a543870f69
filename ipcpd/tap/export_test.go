package tap

// OpenTAP exposes the device opener to the external tests.
var OpenTAP = openTAP
