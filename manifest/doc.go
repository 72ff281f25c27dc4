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
// attribute, else by content: see match.go), a three-way Merge that applies
// our changes onto their version and reports conflicts, and Reapply, which
// carries journaled edits onto a moved upstream by their elements' identity.
//
// # Decisions
//
//   - A leaf's text is its text and CDATA runs concatenated; texts that are
//     only whitespace compare equal (formatters add and drop them). Text
//     between child elements is not compared unless it has non-blank parts.
//   - Removing an element that stands alone on its line takes the whitespace
//     up to the next node with it (or, for the last child, the whitespace
//     since the previous node), so the siblings keep their layout. Comments
//     next to it stay.
//   - Inserting at a position goes before the comments directly above the
//     element that will follow (they are taken to describe it), copying the
//     whitespace in front of them; appending goes after the last element with
//     the whitespace in front of it. The fragment's line endings follow that
//     whitespace (documents with mixed line endings keep them).
//   - An insert with Node set is exact: it replaces the whitespace between
//     two items (child nodes other than text, and words of text) with Lead,
//     the XML verbatim and Trail, which may hold only XML whitespace. Invert
//     turns a remove into such an insert, so removing an element and
//     applying the inverse gives back the original bytes whatever the
//     layout around it (blank lines, comments, mixed line endings).
//   - Merge removes an element one side removed unless the other side added
//     or changed something in it (an attribute, a text, a child); removals
//     inside it agree with the removal. At every conflict theirs is kept.
//   - To re-apply journaled edits on a moved upstream, use Reapply (or
//     Merge(base, base with the edits, upstream)) rather than Apply: it
//     reports what upstream changed under the edits as conflicts with base,
//     ours and theirs values, and an element it cannot find uniquely as an
//     ambiguous conflict, never a guess.
//   - Text between child elements is not compared: Diff edits such an
//     element in place and never replaces it for that text alone.
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
