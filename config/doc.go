// Package config reads settings.cfg: the INI file shared with the earlier
// Python checker. It parses the fixed sections ([general], [email], [serve],
// [heartbeat], [peers]) into typed settings and hands job sections
// ([TYPE:NAME]) on as raw key/value maps, with their line numbers, for the
// jobs package to decode against its registry of job types.
//
// Loading never stops at the first problem: every problem is collected with
// its file, line, section and key so that `checker config validate` can show
// them all at once.
package config
