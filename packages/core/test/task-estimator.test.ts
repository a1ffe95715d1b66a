import { describe, expect, it } from 'vitest';
import { QuotaConfigError, QuotaValidationError } from '../src/errors.js';
import {
  DEFAULT_ESTIMATION_RULES,
  DEFAULT_TASK_BASELINE,
  defaultTaskEstimator,
  type EstimationRule,
  keywordEstimator,
  type TaskEstimates,
} from '../src/task-estimator.js';

// Length scaling off, so that an estimate is exactly the baseline plus the matched rules.
const byKeywords = keywordEstimator({ tokensPerCharacter: 0 });

function expected(ruleNames: string[]): TaskEstimates {
  const sum: Record<string, number> = { ...DEFAULT_TASK_BASELINE } as Record<string, number>;
  for (const name of ruleNames) {
    const rule = DEFAULT_ESTIMATION_RULES.find((candidate) => candidate.name === name);
    if (rule === undefined) throw new Error(`no rule ${name}`);
    for (const [resource, amount] of Object.entries(rule.amounts)) {
      sum[resource] = (sum[resource] ?? 0) + (amount ?? 0);
    }
  }
  return sum;
}

describe('default keyword table', () => {
  it.each([
    // English
    { description: 'Search the web for flights to Lisbon', rules: ['network'] },
    { description: 'Fetch https://example.com and list its links', rules: ['network'] },
    { description: 'Read the attached files', rules: ['files'] },
    { description: 'Upload the report', rules: ['files'] },
    { description: 'Run an SQL query against the orders database', rules: ['database'] },
    { description: 'Create a new agent for billing', rules: ['agent-creation'] },
    { description: 'Create a tool that converts units', rules: ['tool-creation'] },
    { description: 'Analyze churn by cohort', rules: ['analysis'] },
    { description: 'Analyse churn by cohort', rules: ['analysis'] },
    { description: 'Summarize the meeting notes', rules: ['summary'] },
    { description: 'Summarise the meeting notes', rules: ['summary'] },
    { description: 'Generate release notes', rules: ['generation'] },
    // 'write' is a file operation and a generation, as the table has it.
    { description: 'Write a haiku about autumn', rules: ['files', 'generation'] },
    { description: 'Translate this paragraph into German', rules: ['translation'] },
    // Russian, in several inflections
    { description: 'Найди в поиске свежие новости', rules: ['network'] },
    { description: 'Открой сайт компании', rules: ['network'] },
    { description: 'Прочитай файлы из папки', rules: ['files'] },
    { description: 'Сохрани результат в файле', rules: ['files'] },
    { description: 'Выполни запрос к базе данных', rules: ['database'] },
    { description: 'Создай нового агента поддержки', rules: ['agent-creation'] },
    { description: 'Создать инструмент для конвертации валют', rules: ['tool-creation'] },
    { description: 'Инструмент для конвертации валют', rules: ['tool-creation'] },
    { description: 'Выгрузи данные из БД', rules: ['files', 'database'] },
    { description: 'Проанализируй продажи за квартал', rules: ['analysis'] },
    { description: 'Сделай анализ продаж', rules: ['analysis'] },
    { description: 'Резюмируй встречу', rules: ['summary'] },
    { description: 'Кратко перескажи статью', rules: ['summary'] },
    { description: 'Сгенерируй описание товара', rules: ['generation'] },
    { description: 'Напиши письмо клиенту', rules: ['generation'] },
    { description: 'Создай текст поздравления', rules: ['generation'] },
    { description: 'Переведи это на английский', rules: ['translation'] },
    { description: 'Нужен перевод договора', rules: ['translation'] },
    // Several rules at once, and none
    {
      description: 'Search the web, then summarize what you find and write it to a file',
      rules: ['network', 'files', 'summary', 'generation'],
    },
    { description: 'Найди на сайте цены и сравни их', rules: ['network', 'analysis'] },
    { description: 'Say hello', rules: [] },
    { description: 'Привет, как дела?', rules: [] },
  ])('$description -> $rules', ({ description, rules }) => {
    expect(byKeywords({ description })).toEqual(expected(rules));
  });

  it('matches case-insensitively, Cyrillic included', () => {
    expect(byKeywords({ description: 'ПРОЧИТАЙ ФАЙЛ' })).toEqual(expected(['files']));
    expect(byKeywords({ description: 'SEARCH' })).toEqual(expected(['network']));
  });

  it('matches decomposed text (й typed as и + combining breve)', () => {
    const decomposed = 'Создай нового агента'.normalize('NFD');
    expect(decomposed).not.toBe('Создай нового агента');
    expect(byKeywords({ description: decomposed })).toEqual(expected(['agent-creation']));
  });

  it('matches keywords only at the start of a word', () => {
    // 'read' in already, 'file' in profile, 'web' in cobweb, 'sql' in PostgreSQL's tail
    expect(byKeywords({ description: 'I already saw the profile of the cobweb' })).toEqual(
      expected([]),
    );
  });

  it('matches an abbreviation only as a whole word', () => {
    // 'бд' (database) as a stem would match бдительный (vigilant).
    expect(byKeywords({ description: 'Будь бдительным' })).toEqual(expected([]));
    expect(byKeywords({ description: 'Сколько строк в бд?' })).toEqual(expected(['database']));
    // 'read' likewise: ready is not a file read, reading is.
    expect(byKeywords({ description: 'Get ready, readily' })).toEqual(expected([]));
    expect(byKeywords({ description: 'Keep reading the README' })).toEqual(expected(['files']));
  });

  it('counts a rule once per task, however often its keywords occur', () => {
    expect(byKeywords({ description: 'search, search and search the web again' })).toEqual(
      expected(['network']),
    );
  });

  it('allows at most two words between the words of a phrase', () => {
    expect(byKeywords({ description: 'create a brand new agent' })).toEqual(
      expected(['agent-creation']),
    );
    expect(byKeywords({ description: 'create a report for the sales agent' })).toEqual(
      expected([]),
    );
  });

  it('is frozen, so that extending it cannot change it for everyone', () => {
    expect(Object.isFrozen(DEFAULT_ESTIMATION_RULES)).toBe(true);
    expect(Object.isFrozen(DEFAULT_ESTIMATION_RULES[0]!.amounts)).toBe(true);
    expect(Object.isFrozen(DEFAULT_ESTIMATION_RULES[0]!.keywords)).toBe(true);
  });

  it('returns a fresh object per call', () => {
    const first = byKeywords({ description: 'hello' });
    (first as Record<string, number>).llm_requests = 99;
    expect(byKeywords({ description: 'hello' })).toEqual(expected([]));
  });
});

describe('length scaling', () => {
  it('adds tokensPerCharacter llm_tokens per character of the description', () => {
    const estimator = keywordEstimator({ tokensPerCharacter: 0.5 });
    expect(estimator({ description: 'x'.repeat(1001) }).llm_tokens).toBe(500 + 501);
  });

  it('defaults to one token per character', () => {
    const description = 'Hello there'; // no keyword
    expect(defaultTaskEstimator({ description })).toEqual({
      ...DEFAULT_TASK_BASELINE,
      llm_tokens: 500 + description.length,
    });
  });

  it('grows with the description', () => {
    const short = defaultTaskEstimator({ description: 'Summarize this:' });
    const long = defaultTaskEstimator({ description: `Summarize this:${' text'.repeat(2000)}` });
    expect(long.llm_tokens! - short.llm_tokens!).toBe(10_000);
    expect(long.llm_requests).toBe(short.llm_requests);
  });
});

describe('custom tables', () => {
  const images: EstimationRule = {
    name: 'images',
    keywords: ['image', 'picture', 'картинк', 'изображени'],
    amounts: { cost_usd: 0.04, llm_requests: 1 },
  };

  it('extends the built-in table with extraRules', () => {
    const estimator = keywordEstimator({ extraRules: [images], tokensPerCharacter: 0 });
    expect(estimator({ description: 'Search the web for a picture of a fox' })).toEqual({
      ...expected(['network']),
      llm_requests: 2,
      cost_usd: 0.04,
    });
    expect(estimator({ description: 'Нарисуй картинку с лисой' })).toMatchObject({
      cost_usd: 0.04,
    });
  });

  it('replaces the built-in table with rules', () => {
    const estimator = keywordEstimator({ rules: [images], tokensPerCharacter: 0 });
    expect(estimator({ description: 'Search the web for an image' })).toEqual({
      ...DEFAULT_TASK_BASELINE,
      llm_requests: 2,
      cost_usd: 0.04,
    });
  });

  it('replaces the baseline', () => {
    const estimator = keywordEstimator({
      rules: [],
      baseline: { llm_requests: 3 },
      tokensPerCharacter: 0,
    });
    expect(estimator({ description: 'Search the web' })).toEqual({ llm_requests: 3 });
  });

  it('takes rules of whole words only', () => {
    const estimator = keywordEstimator({
      rules: [
        { name: 'ci', keywords: [], wholeWords: ['ci', 'gh'], amounts: { tool_creations: 1 } },
      ],
      baseline: {},
      tokensPerCharacter: 0,
    });
    expect(estimator({ description: 'Fix the CI' })).toEqual({ tool_creations: 1 });
    expect(estimator({ description: 'Check the city and ghosts' })).toEqual({});
  });

  it('escapes keywords: they are text, not patterns', () => {
    const estimator = keywordEstimator({
      rules: [{ name: 'cpp', keywords: ['c++', 'node.js'], amounts: { tool_creations: 1 } }],
      baseline: {},
      tokensPerCharacter: 0,
    });
    expect(estimator({ description: 'Port it to C++' })).toEqual({ tool_creations: 1 });
    expect(estimator({ description: 'Use nodexjs' })).toEqual({});
  });

  it.each([
    [{ rules: [{ name: 'x', keywords: [], amounts: {} }] }, 'rules.0.keywords'],
    [{ rules: [{ name: 'x', keywords: [], wholeWords: [], amounts: {} }] }, 'rules.0.keywords'],
    [
      { rules: [{ name: 'x', keywords: ['a'], wholeWords: 'bd' as never, amounts: {} }] },
      'rules.0.wholeWords',
    ],
    [
      { rules: [{ name: 'x', keywords: [], wholeWords: ['ok', ''], amounts: {} }] },
      'rules.0.wholeWords.1',
    ],
    [
      { extraRules: [{ name: 'x', keywords: ['ok', '  '], amounts: {} }] },
      'extraRules.0.keywords.1',
    ],
    [
      { rules: [{ name: 'x', keywords: ['a'], amounts: { llm_tokens: -1 } }] },
      'rules.0.amounts.llm_tokens',
    ],
    [{ rules: [{ name: '', keywords: ['a'], amounts: {} }] }, 'rules.0.name'],
    [{ baseline: { llm_tokens: Number.NaN } }, 'baseline.llm_tokens'],
    [{ tokensPerCharacter: -1 }, 'tokensPerCharacter'],
  ])('rejects bad options at construction (%j)', (options, path) => {
    expect(() => keywordEstimator(options)).toThrow(QuotaConfigError);
    expect(() => keywordEstimator(options)).toThrow(expect.objectContaining({ path }));
  });

  it('rejects a task without a string description', () => {
    expect(() => defaultTaskEstimator({ description: 42 as unknown as string })).toThrow(
      QuotaValidationError,
    );
  });
});
