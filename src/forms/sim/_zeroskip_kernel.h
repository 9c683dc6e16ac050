/* The counting kernel of _zeroskip_native.c, included there once per instruction set: KERNEL(name)
   names this copy's functions, KERNEL_POPCOUNT is its popcount. Everything a copy defines is static.

   Per row of codes: the codes narrowed into a lane row (8- or 16-bit lanes, LPW to a 64-bit word),
   then three counts of words of lanes, all by popcount:

     the non-zero digits of the codes      popcount of their digit flags (one bit per non-zero
                                           digit, at its least significant bit);
     a sub-array's "bitplane" steps        popcount of the digit flags of the OR of its lanes;
     a sub-array's "leading" steps         popcount of those flags smeared down to the lowest digit
                                           (each lane OR-ed with itself shifted right by 1, 2, 4, ..
                                           bits, the bits from the lane above masked off);

   and the same two for the row tiles, from the OR of their sub-arrays' ORs. The sub-arrays' ORs are
   written as a lane array (zero-padded to whole words: a zero lane counts nothing), folded from whole
   words where a sub-array spans them. */

/* Digit flags of a word of lanes: its bits at digits' least significant bits, each digit's higher
   bits OR-ed down onto it first (the `wider` shifts, none for 1-bit digits). */
static inline uint64_t KERNEL(flags_of)(const job_t *job, uint64_t word) {
    uint64_t flags = word & job->flag_mask;
    for (int j = 0; j < job->wider; j++) flags |= (word >> job->wider_shift[j]) & job->wider_mask[j];
    return flags;
}

/* Flags smeared down to every digit below each lane's highest flag. */
static inline uint64_t KERNEL(smeared)(uint64_t flags, int wide, uint64_t flag_mask) {
    uint64_t s = flags;
    if (wide) {
        s |= (s >> 1) & 0x7fff7fff7fff7fffULL;
        s |= (s >> 2) & 0x3fff3fff3fff3fffULL;
        s |= (s >> 4) & 0x0fff0fff0fff0fffULL;
        s |= (s >> 8) & 0x00ff00ff00ff00ffULL;
    } else {
        s |= (s >> 1) & 0x7f7f7f7f7f7f7f7fULL;
        s |= (s >> 2) & 0x3f3f3f3f3f3f3f3fULL;
        s |= (s >> 4) & 0x0f0f0f0f0f0f0f0fULL;
    }
    return s & flag_mask;
}

#ifdef KERNEL_AVX2
/* The set bits of each byte of `v`: a 16-entry table of nibbles (vpshufb) looked up twice. */
static inline __m256i KERNEL(byte_popcounts)(__m256i v) {
    const __m256i nibbles = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2,
                                             3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    return _mm256_add_epi8(_mm256_shuffle_epi8(nibbles, _mm256_and_si256(v, low)),
                           _mm256_shuffle_epi8(nibbles, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

/* The running sums (four 64-bit lanes) plus the set bits of `v`. */
static inline __m256i KERNEL(add_popcount)(__m256i sums, __m256i v) {
    return _mm256_add_epi64(sums, _mm256_sad_epu8(KERNEL(byte_popcounts)(v), _mm256_setzero_si256()));
}

/* flags_of and smeared below, on four words at once. */
static inline __m256i KERNEL(flags_of4)(const job_t *job, __m256i words) {
    __m256i flags = _mm256_and_si256(words, _mm256_set1_epi64x((long long)job->flag_mask));
    for (int j = 0; j < job->wider; j++) {
        __m256i shifted = _mm256_srl_epi64(words, _mm_cvtsi32_si128(job->wider_shift[j]));
        flags = _mm256_or_si256(flags, _mm256_and_si256(shifted, _mm256_set1_epi64x((long long)job->wider_mask[j])));
    }
    return flags;
}

static inline __m256i KERNEL(smear_step4)(__m256i s, int k, uint64_t mask) {
    return _mm256_or_si256(s, _mm256_and_si256(_mm256_srli_epi64(s, k), _mm256_set1_epi64x((long long)mask)));
}

static inline __m256i KERNEL(smeared4)(__m256i flags, int wide, uint64_t flag_mask) {
    __m256i s = flags;
    if (wide) {
        s = KERNEL(smear_step4)(s, 1, 0x7fff7fff7fff7fffULL);
        s = KERNEL(smear_step4)(s, 2, 0x3fff3fff3fff3fffULL);
        s = KERNEL(smear_step4)(s, 4, 0x0fff0fff0fff0fffULL);
        s = KERNEL(smear_step4)(s, 8, 0x00ff00ff00ff00ffULL);
    } else {
        s = KERNEL(smear_step4)(s, 1, 0x7f7f7f7f7f7f7f7fULL);
        s = KERNEL(smear_step4)(s, 2, 0x3f3f3f3f3f3f3f3fULL);
        s = KERNEL(smear_step4)(s, 4, 0x0f0f0f0f0f0f0f0fULL);
    }
    return _mm256_and_si256(s, _mm256_set1_epi64x((long long)flag_mask));
}

static inline uint64_t KERNEL(lane_sum)(__m256i sums) {
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, sums);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

/* The non-zero digits (and, with `leading`, the leading steps) of `words` words of lanes at `bytes`:
   with AVX2 four words at a time, the rest one by one. */
static void KERNEL(count_words)(const job_t *job, const uint8_t *bytes, Py_ssize_t words, uint64_t *digits,
                                uint64_t *leading) {
    uint64_t d = 0, l = 0, flag_mask = job->flag_mask;
    Py_ssize_t w = 0;
#ifdef KERNEL_AVX2
    __m256i digit_sums = _mm256_setzero_si256(), leading_sums = _mm256_setzero_si256();
    for (; w + 4 <= words; w += 4) {
        __m256i flags = KERNEL(flags_of4)(job, _mm256_loadu_si256((const __m256i *)(bytes + 8 * w)));
        digit_sums = KERNEL(add_popcount)(digit_sums, flags);
        if (leading) leading_sums = KERNEL(add_popcount)(leading_sums, KERNEL(smeared4)(flags, job->wide, flag_mask));
    }
    d = KERNEL(lane_sum)(digit_sums);
    l = KERNEL(lane_sum)(leading_sums);
#endif
    for (; w < words; w++) {
        uint64_t flags = KERNEL(flags_of)(job, load64(bytes + 8 * w));
        d += (uint64_t)KERNEL_POPCOUNT(flags);
        if (leading) l += (uint64_t)KERNEL_POPCOUNT(KERNEL(smeared)(flags, job->wide, flag_mask));
    }
    *digits += d;
    if (leading) *leading += l;
}

/* Each word's lanes OR-ed onto one lane, four words at a time with AVX2 (the low lane of each 64-bit
   word picked out by vpshufb); returns the words done (none without AVX2). */
static inline Py_ssize_t KERNEL(fold4_uint8_t)(const uint8_t *bytes, Py_ssize_t n, uint8_t *ors) {
    Py_ssize_t f = 0;
#ifdef KERNEL_AVX2
    const __m256i pick = _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 8, -1,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (; f + 4 <= n; f += 4) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(bytes + 8 * f));
        v = _mm256_or_si256(v, _mm256_srli_epi64(v, 32));
        v = _mm256_or_si256(v, _mm256_srli_epi64(v, 16));
        v = _mm256_shuffle_epi8(_mm256_or_si256(v, _mm256_srli_epi64(v, 8)), pick);
        uint16_t low = (uint16_t)_mm256_extract_epi16(v, 0), high = (uint16_t)_mm256_extract_epi16(v, 8);
        memcpy(ors + f, &low, 2);
        memcpy(ors + f + 2, &high, 2);
    }
#else
    (void)bytes, (void)n, (void)ors;
#endif
    return f;
}

static inline Py_ssize_t KERNEL(fold4_uint16_t)(const uint8_t *bytes, Py_ssize_t n, uint16_t *ors) {
    Py_ssize_t f = 0;
#ifdef KERNEL_AVX2
    const __m256i pick = _mm256_setr_epi8(0, 1, 8, 9, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 8, 9,
                                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (; f + 4 <= n; f += 4) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(bytes + 8 * f));
        v = _mm256_or_si256(v, _mm256_srli_epi64(v, 32));
        v = _mm256_shuffle_epi8(_mm256_or_si256(v, _mm256_srli_epi64(v, 16)), pick);
        uint32_t low = (uint32_t)_mm256_extract_epi32(v, 0), high = (uint32_t)_mm256_extract_epi32(v, 4);
        memcpy(ors + f, &low, 4);
        memcpy(ors + f + 2, &high, 4);
    }
#else
    (void)bytes, (void)n, (void)ors;
#endif
    return f;
}

/* Each pair of words OR-ed into one, in place: words[i] = words[2i] | words[2i + 1] (`n` even). */
static void KERNEL(or_pairs)(uint64_t *words, Py_ssize_t n) {
    Py_ssize_t i = 0;
#ifdef KERNEL_AVX2 /* eight words in, four out: (a0, b0, a2, b2) | (a1, b1, a3, b3), then reordered */
    for (; i + 4 <= n / 2; i += 4) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(words + 2 * i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(words + 2 * i + 4));
        __m256i pairs = _mm256_or_si256(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
        _mm256_storeu_si256((__m256i *)(words + i), _mm256_permute4x64_epi64(pairs, 0xd8));
    }
#endif
    for (; i < n / 2; i++) words[i] = words[2 * i] | words[2 * i + 1];
}

/* The ORs of runs of `r` lanes of `lanes` (n lanes) into `ors`, zero-padded to whole words; returns
   the runs. Where r is a multiple of LPW the whole runs' words are OR-ed pairwise (in `words`, scratch
   of n / LPW words) down to one word per run, then folded to one lane; where r divides LPW each word's
   r-lane groups are folded onto their first lanes; lane by lane otherwise and for a short last run. */
#define KERNEL_RUN_ORS(LANE, LPW)                                                              \
    static void KERNEL(fold_words_##LANE)(const LANE *restrict words, Py_ssize_t n,                 \
                                          LANE *restrict ors) {                                      \
        for (Py_ssize_t f = KERNEL(fold4_##LANE)((const uint8_t *)words, n, ors); f < n; f++) {     \
            LANE any = 0;                                                                            \
            for (int k = 0; k < LPW; k++) any |= words[f * LPW + k];                                 \
            ors[f] = any;                                                                            \
        }                                                                                            \
    }                                                                                                \
    static Py_ssize_t KERNEL(run_ors_##LANE)(const LANE *restrict lanes, Py_ssize_t n, Py_ssize_t r, \
                                             LANE *restrict ors, uint64_t *restrict words) {         \
        Py_ssize_t runs = (n + r - 1) / r, f = 0;                                                    \
        if (r % LPW == 0) {                                                                          \
            Py_ssize_t per_run = r / LPW, count = n / r * per_run;                                   \
            const LANE *folded = lanes;                                                              \
            if (per_run > 1) {                                                                \
                memcpy(words, lanes, (size_t)count * 8);                                             \
                folded = (const LANE *)words;                                                        \
            }                                                                                        \
            for (; per_run % 2 == 0; per_run /= 2, count /= 2) KERNEL(or_pairs)(words, count);       \
            for (Py_ssize_t run = 0; per_run > 1 && run < n / r; run++) {                            \
                uint64_t any = 0;                                                                    \
                for (Py_ssize_t j = 0; j < per_run; j++) any |= words[run * per_run + j];            \
                words[run] = any;                                                                    \
            }                                                                                        \
            f = n / r;                                                                               \
            KERNEL(fold_words_##LANE)(folded, f, ors);                                               \
        } else if (LPW % r == 0) {                                                                   \
            for (Py_ssize_t w = 0; w < n / LPW; w++) {                                               \
                uint64_t word = load64(lanes + w * LPW);                                             \
                for (Py_ssize_t shift = r * 4 * (Py_ssize_t)sizeof(LANE); shift >= 8 * (Py_ssize_t)sizeof(LANE); shift /= 2) \
                    word |= word >> shift;                                                           \
                for (Py_ssize_t k = 0; k < LPW; k += r) ors[f++] = (LANE)(word >> (k * 8 * sizeof(LANE))); \
            }                                                                                        \
        }                                                                                            \
        for (; f < runs; f++) {                                                                      \
            LANE any = 0;                                                                            \
            for (Py_ssize_t i = f * r; i < (f + 1) * r && i < n; i++) any |= lanes[i];              \
            ors[f] = any;                                                                            \
        }                                                                                            \
        for (Py_ssize_t pad = runs; pad % LPW; pad++) ors[pad] = 0;                                  \
        return runs;                                                                                 \
    }
KERNEL_RUN_ORS(uint8_t, 8)
KERNEL_RUN_ORS(uint16_t, 4)

/* One row of lanes (`n` lanes, zero-padded to whole words) counted into `c`; `ors` and `tile_ors`
   are scratch rows of at least n lanes plus a word, `words` of n lanes. */
static void KERNEL(count_row)(const job_t *job, const uint8_t *lanes, Py_ssize_t n, uint8_t *ors,
                              uint8_t *tile_ors, uint64_t *words, counts_t *c) {
    Py_ssize_t lane_bytes = job->wide ? 2 : 1, lpw = 8 / lane_bytes, runs, tiles;
    uint64_t digits = 0, bitplane = 0, leading = 0, tile_bitplane = 0, tile_leading = 0;
    KERNEL(count_words)(job, lanes, (n + lpw - 1) / lpw, &digits, NULL);
    if (job->wide) {
        runs = KERNEL(run_ors_uint16_t)((const uint16_t *)lanes, n, job->fragment, (uint16_t *)ors, words);
        tiles = KERNEL(run_ors_uint16_t)((const uint16_t *)ors, runs, job->tile_rows / job->fragment,
                                         (uint16_t *)tile_ors, words);
    } else {
        runs = KERNEL(run_ors_uint8_t)(lanes, n, job->fragment, ors, words);
        tiles = KERNEL(run_ors_uint8_t)(ors, runs, job->tile_rows / job->fragment, tile_ors, words);
    }
    KERNEL(count_words)(job, ors, (runs + lpw - 1) / lpw, &bitplane, &leading);
    KERNEL(count_words)(job, tile_ors, (tiles + lpw - 1) / lpw, &tile_bitplane, &tile_leading);
    c->digits += (int64_t)digits;
    c->rounds_bitplane += (int64_t)bitplane;
    c->rounds_leading += (int64_t)leading;
    c->reads_bitplane += (int64_t)tile_bitplane;
    c->reads_leading += (int64_t)tile_leading;
}

/* Copy loops: lanes (the low bits; a float goes through int64, where its integer value converts
   exactly), values, or both in one loop. VIA is the type each code passes through to its lane. */
#define KERNEL_COPY(SRC, DST, VIA)                                                                   \
    static void KERNEL(copy_##SRC##_##DST)(const void *src, void *dst, Py_ssize_t n) {               \
        const SRC *restrict s = (const SRC *)src;                                                    \
        DST *restrict d = (DST *)dst;                                                                \
        for (Py_ssize_t i = 0; i < n; i++) d[i] = (DST)(VIA)s[i];                                    \
    }
#define KERNEL_SPLIT(SRC, DST, LANE, VIA)                                                            \
    static void KERNEL(split_##SRC##_##DST##_##LANE)(const void *src, void *dst, void *lanes,        \
                                                      Py_ssize_t n) {                                \
        const SRC *restrict s = (const SRC *)src;                                                    \
        DST *restrict d = (DST *)dst;                                                                \
        LANE *restrict l = (LANE *)lanes;                                                            \
        for (Py_ssize_t i = 0; i < n; i++) {                                                         \
            d[i] = (DST)s[i];                                                                        \
            l[i] = (LANE)(VIA)s[i];                                                                  \
        }                                                                                            \
    }
#define KERNEL_COPIES(SRC, VIA)                                                                      \
    KERNEL_COPY(SRC, uint8_t, VIA)                                                                   \
    KERNEL_COPY(SRC, uint16_t, VIA)                                                                  \
    KERNEL_SPLIT(SRC, float, uint8_t, VIA)                                                           \
    KERNEL_SPLIT(SRC, float, uint16_t, VIA)                                                          \
    KERNEL_SPLIT(SRC, double, uint8_t, VIA) KERNEL_SPLIT(SRC, double, uint16_t, VIA)
KERNEL_COPIES(int8_t, int8_t)
KERNEL_COPIES(uint8_t, uint8_t)
KERNEL_COPIES(int16_t, int16_t)
KERNEL_COPIES(uint16_t, uint16_t)
KERNEL_COPIES(int32_t, int32_t)
KERNEL_COPIES(int64_t, int64_t)
KERNEL_COPIES(float, int64_t)
KERNEL_COPIES(double, int64_t)

/* The loop narrowing codes of `src` kind to lanes (16-bit where `wide`). */
static copy_fn KERNEL(narrower)(kind_t src, int wide) {
#define KERNEL_PICK(SRC) return wide ? KERNEL(copy_##SRC##_uint16_t) : KERNEL(copy_##SRC##_uint8_t);
    SWITCH_ON_SOURCE(src, KERNEL_PICK)
#undef KERNEL_PICK
}

/* The loop converting codes of `src` kind to `dst` values (float32 or float64) and narrowing them to
   lanes (16-bit where `wide`) at once. */
static split_fn KERNEL(splitter)(kind_t src, kind_t dst, int wide) {
#define KERNEL_PICK(SRC)                                                                             \
    if (dst == K_F32) return wide ? KERNEL(split_##SRC##_float_uint16_t) : KERNEL(split_##SRC##_float_uint8_t); \
    return wide ? KERNEL(split_##SRC##_double_uint16_t) : KERNEL(split_##SRC##_double_uint8_t);
    SWITCH_ON_SOURCE(src, KERNEL_PICK)
#undef KERNEL_PICK
}

/* One job: per row of codes, its lanes (a zero-padded scratch row; the out buffer's row is written
   too where it takes lanes), its values written out in the same loop where asked, its counts. */
static void *KERNEL(run_job)(void *arg) {
    job_t *job = (job_t *)arg;
    kind_t lane_kind = job->wide ? K_U16 : K_U8;
    Py_ssize_t lane_bytes = job->wide ? 2 : 1, rows = job->rows;
    Py_ssize_t src_bytes = kind_bytes(job->kind), out_bytes = kind_bytes(job->out_kind);
    int out_lanes = job->out_kind == lane_kind, out_values = job->out_kind == K_F32 || job->out_kind == K_F64;
    copy_fn narrow = KERNEL(narrower)(job->kind, job->wide);
    split_fn split = out_values ? KERNEL(splitter)(job->kind, job->out_kind, job->wide) : NULL;
    size_t row_bytes = (size_t)((rows + 8) * lane_bytes + 8) / 8 * 8;
    if (job->first >= job->last) return NULL; /* nothing to count: no scratch */
    uint8_t *scratch = calloc(4, row_bytes); /* lanes, sub-array ORs, tile ORs (zero tails); words */
    if (!scratch) {
        job->failed = 1;
        return NULL;
    }
    counts_t c = {0, 0, 0, 0, 0};
    for (Py_ssize_t row = job->first; row < job->last; row++) {
        const char *src = job->codes + row * rows * src_bytes;
        if (split) {
            Py_ssize_t v = row / job->groups, g = row % job->groups;
            split(src, job->out + (g * job->vectors + v) * rows * out_bytes, scratch, rows);
        } else {
            narrow(src, scratch, rows);
        }
        if (out_lanes) memcpy(job->out + row * rows * lane_bytes, scratch, (size_t)(rows * lane_bytes));
        KERNEL(count_row)(job, scratch, rows, scratch + row_bytes, scratch + 2 * row_bytes,
                          (uint64_t *)(scratch + 3 * row_bytes), &c);
    }
    free(scratch);
    job->counts = c;
    return NULL;
}
