import { pgliteBed } from './backends.js';
import { describeIndexContract } from './index-contract.js';

describeIndexContract('PGlite shards', pgliteBed);
