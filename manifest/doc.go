// Package manifest provides the deployer's XML layer: parsing and validating
// the repository manifest (deployer.xml) and the instance files it names, and
// editing XML like a careful human with a text editor.
//
// Edits never re-serialise a document. A lossless tokenizer records the byte
// span of every token (declaration, DOCTYPE with its internal subset, comments,
// processing instructions, CDATA, each attribute's name, value and quote), and
// an edit splices new bytes into the original at those offsets: the edited
// attribute or text changes, and quoting, indentation, line endings, comments
// and the order of everything else stay byte-identical. Paths are etree paths
// (/instance/app[@name='web']) evaluated with github.com/beevik/etree against a
// mirror of the lossless tree, and must match exactly one element.
//
// On top of edits the package offers a semantic Diff (the edits that turn one
// version of a file into another, matching elements by tag plus a key
// attribute, else by position among same-tag siblings) and a three-way Merge
// that applies our changes onto their version and reports conflicts.
//
// # Caveats
//
// The tokenizer accepts XML 1.0 and 1.1 documents in UTF-8 (with or without a
// byte order mark). Entities declared in the internal DTD subset and undeclared
// entity references are kept unexpanded: their values, as seen by Diff and by
// path predicates, contain the reference text itself (for example "&build;").
// Comments, processing instructions, the declaration and the DOCTYPE are not
// semantic: Diff ignores changes to them and Apply never touches them.
//
// A Document is immutable and safe for concurrent readers.
package manifest
