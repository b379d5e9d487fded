// A code's written name, "{label}.{id}" (the codebook's label, the code's id): the twin of
// CodebookNames.code_name in cbwidgets/names.py. Views write names with it and never parse one:
// what they send back to the kernel is read there by the one parser.

export const EMPTY = -1; // an empty slot

/** "1.mlp.173" from "1.mlp" and 173; "" for an empty slot. */
export function codeName(label, id) {
  return id === EMPTY ? "" : `${label}.${id}`;
}

/** ' "its label"' for a labelled code (the kernel's code_labels: name -> label as shown), else "". */
export function withMeaning(meanings, name) {
  const label = meanings[name];
  return label ? ` "${label}"` : "";
}
