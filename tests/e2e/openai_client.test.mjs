// Drives a running `moeserve serve` with the official OpenAI Node client: completions and
// chat completions, streamed and not, plus the error shapes the client turns into
// exceptions. run_openai_client_test.sh starts the server and sets the environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.MOESERVE_BASE_URL;
const apiKey = process.env.MOESERVE_API_KEY ?? 'unused';
const model = process.env.MOESERVE_MODEL ?? 'tiny';
if (!baseURL) throw new Error('set MOESERVE_BASE_URL (e.g. http://127.0.0.1:8000/v1)');

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

test('models list shows the served name', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.ok(ids.includes(model), `models: ${ids}`);
});

test('completion', async () => {
  const r = await client.completions.create({
    model, prompt: 'Hello', max_tokens: 6, temperature: 0, ignore_eos: true,
  });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 6);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 6);
});

test('streamed completion equals the non-streamed one', async () => {
  const params = { model, prompt: 'Once upon', max_tokens: 8, temperature: 0, ignore_eos: true };
  const full = await client.completions.create(params);
  const stream = await client.completions.create({
    ...params, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, full.choices[0].text);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 8);
});

test('chat completion', async () => {
  const r = await client.chat.completions.create({
    model,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }],
    max_tokens: 5, temperature: 0, ignore_eos: true,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.usage.completion_tokens, 5);
});

test('streamed chat completion equals the non-streamed one', async () => {
  const params = {
    model, messages: [{ role: 'user', content: 'Tell me a story' }],
    max_completion_tokens: 7, temperature: 0, ignore_eos: true,
  };
  const full = await client.chat.completions.create(params);
  const stream = await client.chat.completions.create({
    ...params, stream: true, stream_options: { include_usage: true },
  });
  let content = '';
  let role = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) content += c.delta.content;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(content, full.choices[0].message.content);
  assert.equal(usage.completion_tokens, 7);
});

test('n=2 with a seed returns two choices', async () => {
  const r = await client.completions.create({
    model, prompt: 'x', n: 2, seed: 3, max_tokens: 3, ignore_eos: true,
  });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
});

test('errors: unknown model is 404, bad value is 400', async () => {
  await assert.rejects(
    client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 }),
    (e) => e instanceof OpenAI.NotFoundError && /does not exist/.test(e.message),
  );
  await assert.rejects(
    client.completions.create({ model, prompt: 'x', temperature: -1 }),
    (e) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message),
  );
});

test('a wrong API key is 401', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});
