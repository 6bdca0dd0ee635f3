import { pgliteBed } from './backends.js';
import { describeShardContract } from './router-contract.js';

describeShardContract('PGlite shards', pgliteBed);
