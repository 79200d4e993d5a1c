package storetest

// lifecycleCases are the conformance cases of access requests, delegation
// and expiry hooks.
var lifecycleCases = []testCase{}
