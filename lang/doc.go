// Package lang is CloudSpeak's language: its lexer and grammar
// (participle), the checker, diagnostics with carets and hints, the
// formatter and `help`. Parse turns a source into a File whose every node
// knows its range; Check (or Load, which does both) reports every problem
// it finds as a Diagnostic, and returns what the runtime compiles; Format
// prints a File in the canonical layout, keeping its comments.
//
// The language's words (metrics and their units, aggregates, days, command
// verbs) are defined once, in words.go, and read from there by the checker,
// help, the REPL's completion and the runtime's compiler.
//
// It knows nothing of clouds, machines or how policies run: a provider or
// balancer block's settings are checked against the schemas its caller
// hands over (Options), which the driver packages declare; the runtime
// gives the checked policy its meaning.
package lang
