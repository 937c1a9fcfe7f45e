/**
 * A restricted reader of the pickle a PyTorch checkpoint holds (`data.pkl` inside the zip that
 * `torch.save` writes). It interprets the opcodes state dicts use (protocols 2-5: dicts, lists,
 * tuples, strings, numbers, booleans, None, memo, persistent ids) and knows a fixed list of
 * globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
 * `torch._utils._rebuild_parameter` and the storage classes. Nothing is ever imported or called:
 * any other global is refused with an error that names it and the file and says that nothing
 * was run, so a hostile checkpoint (one whose pickle would call `os.system`, say) cannot execute
 * code here. Browser-safe.
 */

export class TorchPickleError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'TorchPickleError';
  }
}

export type StorageDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** The storage classes a state dict may name, by their dtype. */
export const STORAGE_CLASSES: Readonly<Record<string, StorageDtype>> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};

export const DTYPE_BYTES: Readonly<Record<StorageDtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** A storage of the archive: the entry `data/<key>` holding `numel` elements of `dtype`. */
export interface StorageRef {
  kind: 'storage';
  key: string;
  dtype: StorageDtype;
  numel: number;
}

/** A tensor view of a storage (`_rebuild_tensor_v2`): elements `offset + sum(i_k * stride_k)`. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

/** A known global, before it is applied (REDUCE). */
interface GlobalRef {
  kind: 'global';
  name: string;
}

const MARK = Symbol('mark');

export type PickleValue = null | boolean | number | bigint | string | Uint8Array | PickleValue[] | Map<PickleValue, PickleValue> | TensorRef | StorageRef | GlobalRef;

const ALLOWED = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  ...Object.keys(STORAGE_CLASSES).map((c) => `torch.${c}`),
]);

function isGlobal(v: unknown): v is GlobalRef {
  return typeof v === 'object' && v !== null && (v as GlobalRef).kind === 'global';
}

function asInt(v: unknown, what: string, source: string): number {
  if (typeof v === 'bigint') v = Number(v);
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new TorchPickleError(source, `${what} must be an integer, got ${typeof v}`);
  return v;
}

function intList(v: unknown, what: string, source: string): number[] {
  if (!Array.isArray(v)) throw new TorchPickleError(source, `${what} must be a tuple of integers`);
  return v.map((x, i) => asInt(x, `${what}[${i}]`, source));
}

/**
 * Unpickles `bytes`. `persistentLoad` turns a persistent id (for torch: the tuple ('storage',
 * storage class, key, location, numel)) into a value.
 */
export function unpickle(bytes: Uint8Array, source: string, persistentLoad: (pid: PickleValue) => PickleValue): PickleValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const stack: (PickleValue | typeof MARK)[] = [];
  const memo = new Map<number, PickleValue>();
  let p = 0;
  const fail = (msg: string): never => {
    throw new TorchPickleError(source, `${msg} (pickle byte ${p}); nothing was run`);
  };
  const need = (n: number) => {
    if (p + n > bytes.length) fail('the pickle ends early (truncated file?)');
  };
  const u8 = () => { need(1); return bytes[p++]; };
  const u16 = () => { need(2); const v = view.getUint16(p, true); p += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(p, true); p += 4; return v; };
  const i32 = () => { need(4); const v = view.getInt32(p, true); p += 4; return v; };
  const take = (n: number) => { need(n); const b = bytes.subarray(p, p + n); p += n; return b; };
  const text = (n: number) => {
    try {
      return decoder.decode(take(n));
    } catch {
      return fail('a string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) fail('a GLOBAL opcode without its newline');
    const s = new TextDecoder().decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    const v = stack.pop()!;
    if (v === MARK) fail('unexpected mark');
    return v as PickleValue;
  };
  const top = (): PickleValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail('empty stack');
    return v as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail('no mark on the stack');
    const items = stack.splice(at) as PickleValue[];
    items.shift();
    return items;
  };
  const global = (module: string, name: string): GlobalRef => {
    const full = `${module}.${name}`;
    if (!ALLOWED.has(full)) {
      fail(`refused global ${full}: a state dict needs only ${[...ALLOWED].slice(0, 4).join(', ')} and the torch storage classes`);
    }
    return { kind: 'global', name: full };
  };
  const setItems = (target: PickleValue, items: PickleValue[]) => {
    if (!(target instanceof Map)) fail('SETITEM(S) on something that is not a dict');
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (target as Map<PickleValue, PickleValue>).set(items[i], items[i + 1]);
  };
  const apply = (fn: PickleValue, args: PickleValue): PickleValue => {
    if (!isGlobal(fn)) return fail('REDUCE of something that is not a known global');
    if (!Array.isArray(args)) return fail(`REDUCE of ${fn.name} without an argument tuple`);
    switch (fn.name) {
      case 'collections.OrderedDict':
        return new Map(Array.isArray(args[0]) ? (args[0] as PickleValue[][]).map((kv) => [kv[0], kv[1]] as [PickleValue, PickleValue]) : []);
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = args;
        if (typeof storage !== 'object' || storage === null || (storage as StorageRef).kind !== 'storage') return fail('_rebuild_tensor_v2 without a storage');
        return {
          kind: 'tensor', storage: storage as StorageRef, offset: asInt(offset, 'storage offset', source),
          shape: intList(size, 'size', source), stride: intList(stride, 'stride', source),
        };
      }
      case 'torch._utils._rebuild_parameter':
        return args[0] ?? null;
      default:
        return fail(`${fn.name} cannot be applied`);
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: take(8); break; // FRAME
      case 0x2e: return pop(); // STOP
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x28: stack.push(MARK); break; // MARK
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const items = popMark(); const d = new Map(); setItems(d, items); stack.push(d); break; } // DICT
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x8a: case 0x8b: { // LONG1, LONG4
        const n = op === 0x8a ? u8() : u32();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: { need(8); stack.push(view.getFloat64(p, false)); p += 8; break; } // BINFLOAT
      case 0x58: stack.push(text(u32())); break; // BINUNICODE
      case 0x8c: stack.push(text(u8())); break; // SHORT_BINUNICODE
      case 0x8d: { const lo = u32(); const hi = u32(); if (hi) fail('an 8-byte string length'); stack.push(text(lo)); break; } // BINUNICODE8
      case 0x54: stack.push(text(i32())); break; // BINSTRING
      case 0x55: stack.push(text(u8())); break; // SHORT_BINSTRING
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`memo key ${k} is not set`);
        stack.push(memo.get(k)!);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) fail('APPEND to something that is not a list'); (l as PickleValue[]).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); const l = top(); if (!Array.isArray(l)) fail('APPENDS to something that is not a list'); (l as PickleValue[]).push(...items); break; } // APPENDS
      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL without two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(apply(fn, args)); break; } // REDUCE
      case 0x62: { // BUILD: the state of an OrderedDict (its _metadata) is not needed
        pop();
        const obj = top();
        if (!(obj instanceof Map)) fail('BUILD on something other than a dict');
        break;
      }
      case 0x51: stack.push(persistentLoad(pop())); break; // BINPERSID
      default:
        fail(`pickle opcode 0x${op.toString(16).padStart(2, '0')} (${JSON.stringify(String.fromCharCode(op))}) is not one a state dict uses`);
    }
  }
}

/** The persistent id of a torch storage: ('storage', <storage class>, key, location, numel). */
export function torchStorage(pid: PickleValue, source: string): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new TorchPickleError(source, 'a persistent id that is not a torch storage; nothing was run');
  const cls = pid[1];
  const name = isGlobal(cls) ? cls.name.replace(/^torch\./, '') : '';
  const dtype = STORAGE_CLASSES[name];
  if (!dtype) throw new TorchPickleError(source, `storage of unknown class ${isGlobal(cls) ? cls.name : typeof cls}; nothing was run`);
  if (typeof pid[2] !== 'string') throw new TorchPickleError(source, 'a storage key that is not a string; nothing was run');
  return { kind: 'storage', key: pid[2], dtype, numel: asInt(pid[4], 'storage size', source) };
}
