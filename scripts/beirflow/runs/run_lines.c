// The lines of a run, `qid Q0 docid rank score tag\n`, each score written as Python's repr of the double: Ryu's
// shortest, closest digits (ryu/d2s.c, vendored unchanged from github.com/ulfjack/ryu) in repr's layout.
// Compiled on first use and called through ctypes by beirflow/runs/compiled.py, which releases the GIL.
#include "ryu/d2s.c"

// repr's digits and exponent of a finite, non-zero double: value = mantissa * 10^exponent, no trailing zeros.
static floating_decimal_64 shortest(const uint64_t ieeeMantissa, const uint32_t ieeeExponent) {
  floating_decimal_64 v;
  if (d2d_small_int(ieeeMantissa, ieeeExponent, &v)) {
    for (;;) {  // a whole number's trailing zeros go to the exponent, as in d2s_buffered_n
      const uint64_t q = div10(v.mantissa);
      if (((uint32_t) v.mantissa) - 10 * ((uint32_t) q) != 0) {
        break;
      }
      v.mantissa = q;
      ++v.exponent;
    }
    return v;
  }
  return d2d(ieeeMantissa, ieeeExponent);
}

// The length decimal digits of output (below 10^17) into result, two at a time as Ryu's to_chars writes them.
static inline void write_digits(uint64_t output, const int length, char* const result) {
  int i = 0;
  if ((output >> 32) != 0) {
    const uint64_t q = div1e8(output);
    uint32_t output2 = ((uint32_t) output) - 100000000 * ((uint32_t) q);
    output = q;
    const uint32_t c = output2 % 10000;
    output2 /= 10000;
    const uint32_t d = output2 % 10000;
    memcpy(result + length - 2, DIGIT_TABLE + ((c % 100) << 1), 2);
    memcpy(result + length - 4, DIGIT_TABLE + ((c / 100) << 1), 2);
    memcpy(result + length - 6, DIGIT_TABLE + ((d % 100) << 1), 2);
    memcpy(result + length - 8, DIGIT_TABLE + ((d / 100) << 1), 2);
    i = 8;
  }
  uint32_t output2 = (uint32_t) output;
  while (output2 >= 10000) {
    const uint32_t c = output2 % 10000;
    output2 /= 10000;
    memcpy(result + length - i - 2, DIGIT_TABLE + ((c % 100) << 1), 2);
    memcpy(result + length - i - 4, DIGIT_TABLE + ((c / 100) << 1), 2);
    i += 4;
  }
  if (output2 >= 100) {
    memcpy(result + length - i - 2, DIGIT_TABLE + ((output2 % 100) << 1), 2);
    output2 /= 100;
    i += 2;
  }
  if (output2 >= 10) {
    memcpy(result + length - i - 2, DIGIT_TABLE + (output2 << 1), 2);
  } else {
    result[length - i - 1] = (char) ('0' + output2);
  }
}

// Python's repr of f (float_repr_style 'short'): positional from 1e-4 up to 1e16 with at least one digit after
// the point, else d.ddde-XX / d.ddde+XX with at least two exponent digits. Returns the bytes written (at most 24).
static int repr_double(const double f, char* const out) {
  const uint64_t bits = double_to_bits(f);
  const bool sign = (bits >> 63) != 0;
  const uint64_t ieeeMantissa = bits & ((1ull << DOUBLE_MANTISSA_BITS) - 1);
  const uint32_t ieeeExponent = (uint32_t) ((bits >> DOUBLE_MANTISSA_BITS) & ((1u << DOUBLE_EXPONENT_BITS) - 1));
  int index = 0;
  if (ieeeExponent == (1u << DOUBLE_EXPONENT_BITS) - 1u) {
    if (ieeeMantissa != 0) {
      memcpy(out, "nan", 3);
      return 3;
    }
    if (sign) {
      out[index++] = '-';
    }
    memcpy(out + index, "inf", 3);
    return index + 3;
  }
  if (sign) {
    out[index++] = '-';
  }
  if (ieeeExponent == 0 && ieeeMantissa == 0) {
    memcpy(out + index, "0.0", 3);
    return index + 3;
  }
  const floating_decimal_64 v = shortest(ieeeMantissa, ieeeExponent);
  char digits[17];
  const int length = (int) decimalLength17(v.mantissa);
  write_digits(v.mantissa, length, digits);
  const int point = length + v.exponent;  // digits before the decimal point, in positional notation
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      memcpy(out + index, "0.", 2);
      index += 2;
      memset(out + index, '0', (size_t) -point);
      index += -point;
      memcpy(out + index, digits, (size_t) length);
      return index + length;
    }
    if (point < length) {
      memcpy(out + index, digits, (size_t) point);
      index += point;
      out[index++] = '.';
      memcpy(out + index, digits + point, (size_t) (length - point));
      return index + length - point;
    }
    memcpy(out + index, digits, (size_t) length);
    index += length;
    memset(out + index, '0', (size_t) (point - length));
    index += point - length;
    memcpy(out + index, ".0", 2);
    return index + 2;
  }
  out[index++] = digits[0];
  if (length > 1) {
    out[index++] = '.';
    memcpy(out + index, digits + 1, (size_t) (length - 1));
    index += length - 1;
  }
  int exponent = point - 1;
  out[index++] = 'e';
  out[index++] = exponent < 0 ? '-' : '+';
  exponent = exponent < 0 ? -exponent : exponent;
  if (exponent >= 100) {
    out[index++] = (char) ('0' + exponent / 100);
    exponent %= 100;
  }
  out[index++] = (char) ('0' + exponent / 10);
  out[index++] = (char) ('0' + exponent % 10);
  return index;
}

static int decimal_integer(int64_t value, char* const out) {
  if (value >= 0 && value < 100000000000000000ll) {
    const int length = (int) decimalLength17((uint64_t) value);
    write_digits((uint64_t) value, length, out);
    return length;
  }
  char reversed[20];
  int length = 0, index = 0;
  uint64_t magnitude = value < 0 ? 0 - (uint64_t) value : (uint64_t) value;
  if (value < 0) {
    out[index++] = '-';
  }
  do {
    reversed[length++] = (char) ('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (length > 0) {
    out[index++] = reversed[--length];
  }
  return index;
}

// Lines [0, rows) of a run into out: query and document ids as Arrow large_string arrays (64-bit offsets, already
// shifted to the array's own offset), ranks and scores as arrays. The tag ends with its newline. Returns the
// bytes written, or -1 where out (capacity bytes) would not hold them.
int64_t beirflow_run_lines(const int64_t rows, const int64_t* const query_offsets, const char* const query_data,
                           const int64_t* const doc_offsets, const char* const doc_data, const int64_t* const ranks,
                           const double* const scores, const char* const tag, const int64_t tag_length, char* const out,
                           const int64_t capacity) {
  int64_t written = 0;
  char rank[20], score[24];
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t query_length = query_offsets[row + 1] - query_offsets[row];
    const int64_t doc_length = doc_offsets[row + 1] - doc_offsets[row];
    const int rank_length = decimal_integer(ranks[row], rank);
    const int score_length = repr_double(scores[row], score);
    // the ids, the tag, 4 spaces and "Q0", the rank and the score
    if (capacity - written < query_length + doc_length + tag_length + 6 + rank_length + score_length) {
      return -1;
    }
    char* line = out + written;
    memcpy(line, query_data + query_offsets[row], (size_t) query_length);
    line += query_length;
    memcpy(line, " Q0 ", 4);
    line += 4;
    memcpy(line, doc_data + doc_offsets[row], (size_t) doc_length);
    line += doc_length;
    *line++ = ' ';
    memcpy(line, rank, (size_t) rank_length);
    line += rank_length;
    *line++ = ' ';
    memcpy(line, score, (size_t) score_length);
    line += score_length;
    *line++ = ' ';
    memcpy(line, tag, (size_t) tag_length);
    line += tag_length;
    written = line - out;
  }
  return written;
}

// repr of each of values[0, count) into out, each followed by a newline (for the tests). Returns the bytes written.
int64_t beirflow_repr_doubles(const int64_t count, const double* const values, char* const out) {
  int64_t written = 0;
  for (int64_t i = 0; i < count; ++i) {
    written += repr_double(values[i], out + written);
    out[written++] = '\n';
  }
  return written;
}
