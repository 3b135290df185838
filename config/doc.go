// Package config reads settings.cfg, the INI file shared with the earlier
// Python checker, exactly as Python's configparser.ConfigParser() reads it
// (ini.go, interp.go): comment lines, multi-line values, no inline comments,
// %(key)s interpolation and [DEFAULT] fallbacks. The fixed sections
// ([general], [email], [serve], [heartbeat], [peers], [channels]) become
// typed settings, read through viper; job sections ([TYPE:NAME]) and
// [maintenance:NAME] are handed on as Sections, with their line numbers,
// for the jobs package to decode against its registry of job types.
//
// Loading never stops at the first problem: every problem is collected with
// its file, line, section and key so that `checker config validate` can show
// them all at once, together with hints about values that may not mean what
// they seem.
package config
