"""Where a function can keep what it gets from a call: the stores of the cached-results rule.

A test that ran a function G but not the function F that G calls can depend on F only if
F's result reached it from somewhere that outlived an earlier test: a cache around F (a
caching decorator), or a store that G itself wrote, so that a later G finds the value
there instead of calling F: a module global or closure cell (`global`, `nonlocal`), an
attribute or item of anything that is not G's own fresh object (a module global's dict,
a class attribute, `self` outside construction, a mutable default, a parameter), or
whatever code outside G does with the value when G hands it to a call.

`kept_mentions` answers, for every function of a module, which of the names it calls
(`f()`, `x.f()`, an attribute read `x.f` for a property, or a decorator of G, whose result
G's name keeps) may have their results kept that way. Values are followed through G's
local names and containers (`out = []`, `out.append(f())`, `return out`: handed back to
G's caller, whose own function is asked in turn), and through the builtins that only build
new values from theirs (`len`, `sorted`, `dict`); anything else a value is handed to may
keep it. A name handed to a call without being called (`map(f, xs)`, `partial(f)`, a
decorator) is kept too: the analysis cannot see where its results go.

`caching_definitions` lists the functions and classes whose decorators may keep results:
every decorator but those known to keep none (`property`, `staticmethod`, `dataclass`,
`contextmanager`, pytest's and Hypothesis's markers, ...); `functools.cache`, `lru_cache`,
`cached_property` and every memoiser the list does not know count as caching.
"""

import ast
from collections.abc import Iterator

_FUNCTIONS = ast.FunctionDef | ast.AsyncFunctionDef
# Decorators (their last dotted part) that keep no result across calls.
_PLAIN_DECORATORS = frozenset(
    {"property", "setter", "getter", "deleter", "staticmethod", "classmethod"}
    | {"abstractmethod", "abstractproperty", "overload", "override", "final", "wraps"}
    | {"contextmanager", "asynccontextmanager", "dataclass", "total_ordering", "unique"}
    | {"singledispatch", "singledispatchmethod", "register", "runtime_checkable"}
    | {"no_type_check", "deprecated", "fixture", "given", "example", "settings", "seed"}
    | {"define", "frozen", "mutable", "s", "attrs", "validator", "default"}
)
# Builtins whose result holds nothing but values built from their arguments.
_BUILDERS = frozenset(
    {"len", "str", "int", "float", "bool", "repr", "isinstance", "issubclass", "list"}
    | {"tuple", "dict", "set", "frozenset", "sorted", "reversed", "min", "max", "sum"}
    | {"abs", "any", "all", "round", "hash", "type", "iter", "next", "enumerate", "zip"}
    | {"range", "format", "divmod", "pow", "ord", "chr", "bytes", "callable", "getattr"}
    | {"hasattr", "print"}
)
_CONSTRUCTION = frozenset({"__init__", "__new__", "__post_init__", "__attrs_post_init__"})


def caching_definitions(tree: ast.Module) -> frozenset[str]:
    """Qualnames of the functions and classes of `tree` with a decorator that may cache."""
    return frozenset(
        qualname
        for qualname, node in _definitions(tree, "")
        if any(_decorator_name(d) not in _PLAIN_DECORATORS for d in node.decorator_list)
        and not any(_is_pytest_mark(d) for d in node.decorator_list)
    )


def kept_mentions(tree: ast.Module) -> dict[str, frozenset[str]]:
    """For each function of `tree` by qualname, the names whose results it may keep."""
    return {
        qualname: _Flow(node).kept()
        for qualname, node in _definitions(tree, "")
        if isinstance(node, _FUNCTIONS)
    }


def _definitions(
    node: ast.AST, prefix: str
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]]:
    """Every function and class under `node` with its qualname."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _FUNCTIONS | ast.ClassDef):
            yield prefix + child.name, child
            yield from _definitions(child, f"{prefix}{child.name}.")
        elif not isinstance(child, ast.expr):
            yield from _definitions(child, prefix)


def _decorator_name(decorator: ast.expr) -> str:
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    if isinstance(decorator, ast.Attribute):
        return decorator.attr
    return decorator.id if isinstance(decorator, ast.Name) else ""


def _is_pytest_mark(decorator: ast.expr) -> bool:
    """`pytest.mark.anything` (called or not): a marker keeps nothing."""
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    while isinstance(decorator, ast.Attribute):
        if decorator.attr == "mark":
            return True
        decorator = decorator.value
    return False


def _root(node: ast.expr) -> str | None:
    """The name an attribute or item chain starts from (`a` of `a.b[c].d`), if any."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Flow:
    """Which call results of one function can reach a store (see the module docstring).

    `origins` maps each local name to the names of the calls whose results it may hold.
    """

    def __init__(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._function = function
        self._construction = function.name in _CONSTRUCTION
        arguments = function.args
        self._parameters = {
            a.arg
            for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            + [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        }
        self._shared: set[str] = set()  # global and nonlocal names
        self._locals: set[str] = set()  # names bound by the function's own code
        self._origins: dict[str, set[str]] = {}
        self._kept: set[str] = set()

    def kept(self) -> frozenset[str]:
        statements = list(_own_statements(self._function.body))
        for statement in statements:
            if isinstance(statement, ast.Global | ast.Nonlocal):
                self._shared.update(statement.names)
            elif not isinstance(statement, _FUNCTIONS | ast.ClassDef):
                self._locals.update(
                    node.id
                    for node in ast.walk(statement)
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
                )
        for decorator in self._function.decorator_list:
            self._kept.update(_names(decorator))
        before = -1
        while before != self._size():  # until the origins of every name are known
            before = self._size()
            for statement in statements:
                self._statement(statement)
        return frozenset(self._kept)

    def _size(self) -> int:
        return len(self._kept) + sum(len(origins) for origins in self._origins.values())

    def _statement(self, statement: ast.stmt) -> None:
        if isinstance(statement, _FUNCTIONS | ast.ClassDef):
            self._captured(statement)
            return
        if isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
            # `out += [x]` extends the object `out` names in place, a parameter's too.
            self._into(statement.target.id, self._expression(statement.value))
        elif isinstance(statement, ast.Assign | ast.AugAssign | ast.AnnAssign):
            value = self._expression(statement.value) if statement.value is not None else set()
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                self._store(target, value)
        elif isinstance(statement, ast.For | ast.AsyncFor):
            self._store(statement.target, self._expression(statement.iter))
        elif isinstance(statement, ast.With | ast.AsyncWith):
            for item in statement.items:
                value = self._expression(item.context_expr)
                if item.optional_vars is not None:
                    self._store(item.optional_vars, value)
        else:
            for child in ast.iter_child_nodes(statement):
                if isinstance(child, ast.expr):
                    self._expression(child)

    def _store(self, target: ast.expr, value: set[str]) -> None:
        """`target = <a value holding the results of `value`>`."""
        if isinstance(target, ast.Name):
            if target.id in self._shared:
                self._kept.update(value)
            else:
                self._origins.setdefault(target.id, set()).update(value)
        elif isinstance(target, ast.Tuple | ast.List | ast.Starred):
            for element in ast.iter_child_nodes(target):
                if isinstance(element, ast.expr):
                    self._store(element, value)
        elif isinstance(target, ast.Attribute | ast.Subscript):
            value = value | self._expression(target)
            self._into(_root(target), value)

    def _into(self, root: str | None, value: set[str]) -> None:
        """Values written into (an attribute or item of) the object named `root`."""
        if root is not None and self._local(root):
            self._origins.setdefault(root, set()).update(value)
        else:
            self._kept.update(value)

    def _local(self, name: str) -> bool:
        """Whether `name` is an object this call made: a local, or `self` while made."""
        if name == "self" and self._construction:
            return True
        return name in self._locals and name not in self._parameters | self._shared

    def _expression(self, node: ast.expr) -> set[str]:
        """The names of the calls whose results the value of `node` may hold."""
        if isinstance(node, ast.Name):
            return set(self._origins.get(node.id, ()))
        if isinstance(node, ast.Lambda):
            return self._captured(node)
        if isinstance(node, ast.NamedExpr):
            value = self._expression(node.value)
            self._store(node.target, value)
            return value
        origins: set[str] = set()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                origins |= self._expression(child)
            elif isinstance(child, ast.comprehension):
                iterated = self._expression(child.iter)
                self._store(child.target, iterated)
                origins |= iterated
                for condition in child.ifs:
                    origins |= self._expression(condition)
            elif isinstance(child, ast.keyword):
                origins |= self._expression(child.value)
        if isinstance(node, ast.Attribute):
            origins.add(node.attr)  # a property runs when read
        elif isinstance(node, ast.Call):
            origins |= self._call(node)
        return origins

    def _call(self, call: ast.Call) -> set[str]:
        """What a call adds: its own name, and where its arguments go."""
        function = call.func
        name = _decorator_name(function)
        arguments: set[str] = set()
        for argument in [*call.args, *(keyword.value for keyword in call.keywords)]:
            arguments |= self._expression(argument)
            arguments |= self._handed(argument)
        if isinstance(function, ast.Name) and name in _BUILDERS:
            return arguments | {name}
        if isinstance(function, ast.Attribute):
            root = _root(function.value)
            if root is not None and self._local(root):  # out.append(x): out holds x
                self._origins.setdefault(root, set()).update(arguments)
                return arguments | {name}
        self._kept.update(arguments)
        return {name}

    @staticmethod
    def _handed(node: ast.expr) -> set[str]:
        """A function handed over without a call: its results go where it is handed."""
        if isinstance(node, ast.Starred):
            node = node.value
        if isinstance(node, ast.Name):
            return {node.id}
        return {node.attr} if isinstance(node, ast.Attribute) else set()

    def _captured(self, node: ast.AST) -> set[str]:
        """A nested function or lambda: what it captures may go wherever it goes."""
        captured: set[str] = set()
        for inner in ast.walk(node):
            if isinstance(inner, ast.Name) and inner.id in self._origins:
                captured |= self._origins[inner.id]
        if not isinstance(node, ast.Lambda):
            self._kept.update(captured)
        return captured


def _names(node: ast.expr) -> set[str]:
    """Every plain name and attribute name in an expression."""
    return {
        inner.id if isinstance(inner, ast.Name) else inner.attr
        for inner in ast.walk(node)
        if isinstance(inner, ast.Name | ast.Attribute)
    }


def _own_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a function body, nested blocks included, nested functions not."""
    for statement in body:
        yield statement
        if isinstance(statement, _FUNCTIONS | ast.ClassDef):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _own_statements(getattr(statement, field, []))
        for handler in getattr(statement, "handlers", []):
            yield from _own_statements(handler.body)
        for case in getattr(statement, "cases", []):
            yield from _own_statements(case.body)
