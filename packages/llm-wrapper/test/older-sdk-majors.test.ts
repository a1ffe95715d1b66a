/**
 * The oldest majors the peer ranges admit, openai 5.0 and @anthropic-ai/sdk 0.50, against the
 * same stand-in as the main suite (which runs openai 6 and @anthropic-ai/sdk 1).
 */
import Anthropic from 'anthropic-sdk-v0';
import OpenAI from 'openai-v5';
import { describeAnthropicMajor, describeOpenAIMajor } from './sdk-major-cases.js';
import { standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();

describeOpenAIMajor('openai 5.0', OpenAI, standIn);
describeAnthropicMajor('@anthropic-ai/sdk 0.50', Anthropic, standIn);
