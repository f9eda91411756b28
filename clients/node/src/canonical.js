// The bytes a jobordre signature covers (docs/protocol.md, "The canonical form").
//
// The worker re-serialises the envelope it decoded with Python's
// json.dumps(sort_keys=True, separators=(",", ":")), whose output differs from
// JSON.stringify in three ways reproduced here: keys sorted by code point, every
// character outside printable ASCII (U+0020..U+007E) escaped as lowercase \uXXXX (UTF-16
// surrogate pairs for the rest), and numbers the worker reads as floats written the way
// Python's repr writes them.

/** Python's repr of a finite float, from the shortest round-trip digits JS also uses. */
export function pythonFloat(value) {
  if (Object.is(value, -0)) return '-0.0';
  if (value === 0) return '0.0';
  const sign = value < 0 ? '-' : '';
  const [mantissa, exponent] = Math.abs(value).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const point = Number(exponent) + 1; // digits before the decimal point
  if (point > -4 && point <= 16) {
    if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const power = point - 1;
  const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
  const magnitude = String(Math.abs(power)).padStart(2, '0');
  return `${sign}${digits[0]}${fraction}e${power < 0 ? '-' : '+'}${magnitude}`;
}

function number(value) {
  if (!Number.isFinite(value)) {
    throw new TypeError('jobordre: NaN and Infinity are not JSON; send a finite number');
  }
  const text = JSON.stringify(value);
  // The worker parses what JSON.stringify wrote: digits alone are a Python int (printed
  // the same), a fraction or an exponent a Python float (printed by repr).
  return /[.eE]/.test(text) ? pythonFloat(value) : text;
}

function string(value) {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function byCodePoint(a, b) {
  const left = Array.from(a, (c) => c.codePointAt(0));
  const right = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    if (left[i] !== right[i]) return left[i] - right[i];
  }
  return left.length - right.length;
}

/** `value` as Python's json.dumps(value, sort_keys=True, separators=(",", ":")) writes it. */
export function pythonJson(value) {
  if (value === null) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'number') return number(value);
  if (typeof value === 'string') return string(value);
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort(byCodePoint);
    return `{${keys.map((key) => `${string(key)}:${pythonJson(value[key])}`).join(',')}}`;
  }
  throw new TypeError(`jobordre: a ${typeof value} is not JSON`);
}

/** The canonical form of an envelope: every field but `signature`, as the worker signs it. */
export function canonical(envelope) {
  const { signature, ...signed } = envelope;
  return pythonJson(signed);
}
