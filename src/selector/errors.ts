// The one error a selector that does not parse throws.

/**
 * A selector that does not parse.
 * `column` is 1-based and counts Unicode code points (a column past the last character means "at the end").
 * `reason` is the explanation without the selector, e.g. `unexpected "=" at column 13; expected "==", …`;
 * `message` is `selector "<source>": <reason>` (the source JSON-quoted, so control characters show as escapes).
 */
export class SelectorError extends Error {
  readonly selector: string;
  readonly column: number;
  readonly reason: string;

  constructor(selector: string, column: number, reason: string) {
    super(`selector ${JSON.stringify(selector)}: ${reason}`);
    this.name = 'SelectorError';
    this.selector = selector;
    this.column = column;
    this.reason = reason;
  }
}
