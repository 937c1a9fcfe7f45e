import type { CaseFactory } from '../case.js';
import { elementwiseCases } from './elementwise.js';
import { layoutCases } from './layout.js';
import { optimCases } from './optim.js';
import { normCases } from './norm.js';
import { attentionCases } from './attention.js';
import { matmulCases } from './matmul.js';
import { clipCases } from './clip.js';

/** Every benchmark family, in print order. */
export const FACTORIES: CaseFactory[] = [elementwiseCases, layoutCases, optimCases, normCases, attentionCases, matmulCases, clipCases];
