/** The part of `pg`'s internal utilities the raw prepared-statement path uses. */
declare module 'pg/lib/utils.js' {
  const utils: { prepareValue(value: unknown): unknown };
  export default utils;
}
